//! The page's wasm (trunk builds it for index.html): everything lives in `lucy::web::ui`.

#[cfg(all(target_arch = "wasm32", feature = "page"))]
mod page {
    use wasm_bindgen::prelude::*;

    /// The model's time on one photo, `runs` times, with the class activation maps or not:
    /// `bench/browser_peers.mjs` and the browser tests call it as
    /// `window.wasmBindings.time_inference(bytes, runs, explain)`.
    #[wasm_bindgen]
    pub async fn time_inference(
        photo: Vec<u8>,
        runs: u32,
        explain: bool,
    ) -> Result<JsValue, JsError> {
        lucy::web::ui::time_inference(photo, runs, explain).await
    }
}

fn main() {
    #[cfg(all(target_arch = "wasm32", feature = "page"))]
    lucy::web::ui::start();
}
