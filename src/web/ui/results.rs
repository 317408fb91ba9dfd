//! Result cards, newest first: one per photo from the moment it arrives ("waiting for the
//! model"), then its top-5 bars or its error; error cards for everything else that goes wrong.
//! `data-state` says where a card is: `waiting`, `done` or `error`.
//!
//! "Why?" on a finished card draws the class activation map of the top class over the part of
//! the photo the model saw; clicking a bar shows that class's map instead. The card carries
//! the map it shows in `data-why-label` and `data-why-grid` (7 x 7, JSON).

use std::cell::Cell;
use std::rc::Rc;

use gloo_events::EventListener;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, HtmlElement, ImageData};

use super::Answer;
use super::dom::{by_id, element, text};
use crate::explain::{ClassMap, overlay};
use crate::preprocess::{CropRegion, INPUT_SIDE};

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

    /// The predictions as bars, most probable first, how long it took on what, and the
    /// "Why?" toggle.
    pub fn show(&self, answer: Answer, note: &str) {
        if let Some(top) = answer.predictions.first() {
            let _ = self.root.set_attribute("data-top1", &top.label);
        }
        let list: HtmlElement = element("ol");
        list.set_class_name("bars");
        let mut items = Vec::new();
        for p in &answer.predictions {
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
            items.push(item);
        }
        let _ = self.root.insert_before(&list, Some(&self.status));
        self.status.set_class_name("time");
        self.done(note);
        self.add_why(answer, items);
    }

    /// The "Why?" button, the canvas it draws on, and the bars as class pickers.
    fn add_why(&self, answer: Answer, items: Vec<HtmlElement>) {
        let button: web_sys::HtmlButtonElement = element("button");
        button.set_type("button");
        button.set_class_name("why");
        button.set_text_content(Some("Why?"));
        let _ = button.set_attribute("aria-pressed", "false");
        let _ = self.root.append_child(&button);
        let canvas: HtmlCanvasElement = element("canvas");
        canvas.set_class_name("why-map");
        canvas.set_width(INPUT_SIDE as u32);
        canvas.set_height(INPUT_SIDE as u32);
        canvas.set_hidden(true);
        let _ = self.root.prepend_with_node_1(&canvas);
        let why = Rc::new(Why {
            root: self.root.clone(),
            canvas,
            answer,
            shown: Cell::new(false),
            selected: Cell::new(0),
        });
        let toggle = {
            let why = why.clone();
            EventListener::new(&button.clone(), "click", move |_| {
                why.shown.set(!why.shown.get());
                let _ = button.set_attribute("aria-pressed", &why.shown.get().to_string());
                why.render();
            })
        };
        toggle.forget();
        for (i, item) in items.into_iter().enumerate() {
            item.set_class_name("pick");
            item.set_title("Show why (this class)");
            let why = why.clone();
            EventListener::new(&item.clone(), "click", move |_| {
                why.selected.set(i);
                why.shown.set(true);
                why.render();
            })
            .forget();
        }
    }

    fn set_state(&self, state: &str) {
        let _ = self.root.set_attribute("data-state", state);
    }
}

/// One card's maps and what it shows.
struct Why {
    root: HtmlElement,
    canvas: HtmlCanvasElement,
    answer: Answer,
    shown: Cell<bool>,
    /// Which of the top classes (its rank).
    selected: Cell<usize>,
}

impl Why {
    fn render(&self) {
        let thumbnail = self.root.query_selector("img").ok().flatten();
        let show = self.shown.get();
        self.canvas.set_hidden(!show);
        if let Some(img) = thumbnail.and_then(|i| i.dyn_into::<HtmlElement>().ok()) {
            img.set_hidden(show);
        }
        let _ = self.root.class_list().toggle_with_force("why-on", show);
        let items = self.root.query_selector_all(".bars li").ok();
        for i in 0..items.as_ref().map_or(0, |l| l.length()) {
            if let Some(item) = items
                .as_ref()
                .and_then(|l| l.get(i))
                .and_then(|n| n.dyn_into::<HtmlElement>().ok())
            {
                let selected = show && i as usize == self.selected.get();
                let _ = item.class_list().toggle_with_force("selected", selected);
            }
        }
        if !show {
            let _ = self.root.remove_attribute("data-why-label");
            let _ = self.root.remove_attribute("data-why-grid");
            return;
        }
        let Some(map) = self.answer.maps.get(self.selected.get()) else {
            return;
        };
        let _ = self.root.set_attribute("data-why-label", &map.label);
        let grid = serde_json::to_string(&map.grid).unwrap_or_default();
        let _ = self.root.set_attribute("data-why-grid", &grid);
        draw_map(&self.canvas, &self.answer.crop, map);
    }
}

/// `map` over `crop` (the 224 x 224 the model saw) on `canvas`.
pub fn draw_map(canvas: &HtmlCanvasElement, crop: &image::RgbImage, map: &ClassMap) {
    let side = INPUT_SIDE as f32;
    let blended = overlay(
        crop,
        CropRegion {
            x: 0.0,
            y: 0.0,
            side,
        },
        &map.grid,
    );
    let rgba: Vec<u8> = blended
        .pixels()
        .flat_map(|p| [p.0[0], p.0[1], p.0[2], 255])
        .collect();
    let Ok(pixels) =
        ImageData::new_with_u8_clamped_array_and_sh(Clamped(&rgba), crop.width(), crop.height())
    else {
        return;
    };
    if let Some(context) = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into::<CanvasRenderingContext2d>().ok())
    {
        let _ = context.put_image_data(&pixels, 0.0, 0.0);
    }
}
