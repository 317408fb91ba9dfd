//! The model's wasm, run in a Web Worker (trunk builds it for index.html with a loader
//! script): everything lives in `lucy::web::worker`.

fn main() {
    #[cfg(all(target_arch = "wasm32", feature = "model"))]
    lucy::web::worker::start();
}
