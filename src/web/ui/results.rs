//! Result cards, newest first: one per photo from the moment it arrives ("waiting for the
//! model"), then its top-5 bars or its error; error cards for everything else that goes wrong.
//! `data-state` says where a card is: `waiting`, `done` or `error`.

use web_sys::HtmlElement;

use super::dom::{by_id, element, text};
use crate::classifier::Prediction;

pub struct Card {
    root: HtmlElement,
    title: HtmlElement,
    status: HtmlElement,
}

impl Card {
    /// A new card at the top of the results, with a thumbnail when there is one.
    pub fn new(title: &str, thumbnail_url: Option<&str>) -> Self {
        let root: HtmlElement = element("article");
        root.set_class_name("result");
        if let Some(url) = thumbnail_url {
            let img: web_sys::HtmlImageElement = element("img");
            img.set_src(url);
            img.set_alt("");
            let _ = root.append_child(&img);
        }
        let title = text("h3", "", title);
        let status = text("p", "status", "");
        let _ = root.append_child(&title);
        let _ = root.append_child(&status);
        let _ = by_id::<HtmlElement>("results").prepend_with_node_1(&root);
        Self {
            root,
            title,
            status,
        }
    }

    /// An error card: `title` says what failed, `detail` what happened and what to do.
    pub fn error(title: &str, detail: &str) -> Self {
        let card = Self::new(title, None);
        card.fail(title, detail);
        card
    }

    pub fn waiting(&self, note: &str) {
        self.set_state("waiting");
        self.status.set_text_content(Some(note));
    }

    pub fn fail(&self, title: &str, detail: &str) {
        self.set_state("error");
        let _ = self.root.class_list().add_1("error");
        self.title.set_text_content(Some(title));
        self.status.set_text_content(Some(detail));
    }

    /// A note on a finished card (a head file's labels, …).
    pub fn done(&self, note: &str) {
        self.set_state("done");
        self.status.set_text_content(Some(note));
    }

    /// The predictions as bars, most probable first, and how long it took on what.
    pub fn show(&self, predictions: &[Prediction], note: &str) {
        if let Some(top) = predictions.first() {
            let _ = self.root.set_attribute("data-top1", &top.label);
        }
        let list: HtmlElement = element("ol");
        list.set_class_name("bars");
        for p in predictions {
            let item: HtmlElement = element("li");
            let bar = text("span", "bar", "");
            let width = (100.0 * p.probability).max(0.5);
            let _ = bar.style().set_property("width", &format!("{width}%"));
            let _ = item.append_child(&text("span", "label", &p.label));
            let _ = item.append_child(&text(
                "span",
                "pct",
                &format!("{:.1} %", 100.0 * p.probability),
            ));
            let _ = item.append_child(&bar);
            let _ = list.append_child(&item);
        }
        let _ = self.root.insert_before(&list, Some(&self.status));
        self.status.set_class_name("time");
        self.done(note);
    }

    fn set_state(&self, state: &str) {
        let _ = self.root.set_attribute("data-state", state);
    }
}
