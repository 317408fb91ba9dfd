//! Small DOM helpers: the page's elements by id, new elements with text (never HTML: file
//! names and labels are text), and readable text for JS errors.

use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, HtmlElement, Window};

pub fn window() -> Window {
    web_sys::window().expect("the page runs in a window")
}

pub fn document() -> Document {
    window().document().expect("the window has a document")
}

/// An element of index.html by id; they are the page's own, so a missing one is a bug.
pub fn by_id<T: JsCast>(id: &str) -> T {
    document()
        .get_element_by_id(id)
        .unwrap_or_else(|| panic!("index.html has no #{id}"))
        .unchecked_into()
}

/// A new element, e.g. `element::<HtmlElement>("p")`.
pub fn element<T: JsCast>(tag: &str) -> T {
    document()
        .create_element(tag)
        .expect("a valid tag name")
        .unchecked_into()
}

/// A new element holding `text` as text, with an optional class.
pub fn text(tag: &str, class: &str, text: &str) -> HtmlElement {
    let element: HtmlElement = element(tag);
    if !class.is_empty() {
        element.set_class_name(class);
    }
    element.set_text_content(Some(text));
    element
}

/// Add an `<option>` with `value` and `text` to `select`.
pub fn add_option(select: &web_sys::HtmlSelectElement, value: &str, text: &str) {
    let option: web_sys::HtmlOptionElement = element("option");
    option.set_value(value);
    option.set_text(text);
    let _ = select.append_child(&option);
}

pub fn set_text(id: &str, text: &str) {
    by_id::<HtmlElement>(id).set_text_content(Some(text));
}

/// The message of a JS error (`Error.message`, a `DOMException`'s), or the value as text.
pub fn error_text(error: &JsValue) -> String {
    if let Some(e) = error.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    if let Some(e) = error.dyn_ref::<web_sys::DomException>() {
        return e.message();
    }
    error.as_string().unwrap_or_else(|| format!("{error:?}"))
}

/// The `name` of a JS error (`NotAllowedError`, …), if it has one.
pub fn error_name(error: &JsValue) -> Option<String> {
    js_sys::Reflect::get(error, &"name".into())
        .ok()
        .and_then(|n| n.as_string())
}

/// Milliseconds since the page started.
pub fn now_ms() -> f64 {
    window().performance().map_or(0.0, |p| p.now())
}
