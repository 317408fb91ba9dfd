//! The page's wasm (trunk builds it for index.html): everything lives in `lucy::web::ui`.

#[cfg(all(target_arch = "wasm32", feature = "page"))]
mod page {
    use wasm_bindgen::prelude::*;

    /// The model's time on one photo, `runs` times: `bench/browser_peers.mjs` calls it as
    /// `window.wasmBindings.time_inference(bytes, runs)`.
    #[wasm_bindgen]
    pub async fn time_inference(photo: Vec<u8>, runs: u32) -> Result<JsValue, JsError> {
        lucy::web::ui::time_inference(photo, runs).await
    }
}

fn main() {
    #[cfg(all(target_arch = "wasm32", feature = "page"))]
    lucy::web::ui::start();
}
