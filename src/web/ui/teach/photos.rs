//! Photos in and around: files, drops, pastes and camera bursts become features (the model's
//! worker, once per photo), a thumbnail and a kept crop; moving and removing them.

use super::*;

pub(super) fn add_files(app: &Rc<App>, class: u32, files: Option<FileList>) {
    let Some(files) = files else { return };
    let t = teach(app);
    for file in (0..files.length()).filter_map(|i| files.get(i)) {
        t.waiting.set(t.waiting.get() + 1);
        app.enqueue(Job::Teach(TeachJob::File { file, class }));
    }
    if app.model().is_none() {
        status("Photos wait for the model, then are added in order.");
    }
    refresh(app);
}

/// Frames from the running camera into `class`, a few a second, while the button is held.
pub(super) async fn burst(app: &Rc<App>, class: u32) {
    let t = teach(app);
    if app.camera.borrow().is_none() {
        log("Start the camera first (Camera, above), then hold the button to take photos.");
        return;
    }
    if t.capturing.replace(true) {
        return;
    }
    let video: HtmlVideoElement = by_id("video");
    let Some(reader) = FrameReader::new() else {
        t.capturing.set(false);
        log("This browser has no 2D canvas: camera photos cannot be taken.");
        return;
    };
    let mut taken = 0;
    while t.capturing.get() && app.camera.borrow().is_some() {
        if video.video_width() > 0 {
            if let Ok((rgba, width, height)) = reader.read(&video) {
                taken += 1;
                t.waiting.set(t.waiting.get() + 1);
                app.enqueue(Job::Teach(TeachJob::Frame {
                    rgba,
                    width,
                    height,
                    class,
                    name: format!("camera {:.0}-{taken}", now_ms()),
                }));
                refresh(app);
            }
        }
        TimeoutFuture::new(BURST_INTERVAL_MS).await;
    }
    t.capturing.set(false);
}

pub(super) enum Source {
    Bytes(Vec<u8>),
    /// A kept crop: used as it is, no resize.
    Crop(Vec<u8>),
    Rgba(Vec<u8>, u32, u32),
}

impl Source {
    fn request(&self) -> (Request, Vec<Uint8Array>) {
        match self {
            Source::Bytes(bytes) => (Request::FeaturesOfBytes, vec![Uint8Array::from(&bytes[..])]),
            Source::Crop(bytes) => (Request::FeaturesOfCrop, vec![Uint8Array::from(&bytes[..])]),
            Source::Rgba(rgba, width, height) => (
                Request::FeaturesOfRgba {
                    width: *width,
                    height: *height,
                },
                vec![Uint8Array::from(&rgba[..])],
            ),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Source::Bytes(b) | Source::Crop(b) | Source::Rgba(b, ..) => b,
        }
    }
}

/// The backbone's features of a photo, and the 224 x 224 crop it saw.
pub(super) async fn features_of(
    app: &App,
    source: &Source,
) -> Result<(Vec<f32>, image::RgbImage), CallError> {
    let (reply, bytes, _) = app.ask(&|| source.request()).await?;
    let side = INPUT_SIDE as u32;
    match (reply, bytes.as_slice()) {
        (Reply::Features, [features, crop]) => {
            let features = f32_from_bytes(&features.to_vec());
            let crop = image::RgbImage::from_raw(side, side, crop.to_vec());
            match crop {
                Some(crop) if features.len() == FEATURES => Ok((features, crop)),
                _ => Err(CallError::Backend(
                    "the model sent malformed features".into(),
                )),
            }
        }
        _ => Err(CallError::Backend("unexpected reply from the model".into())),
    }
}

/// Add one photo: once per content (the same photo again is named, not recomputed), its
/// features from the model, kept in IndexedDB with its thumbnail and crop, then shown.
pub(super) async fn add_photo(
    app: &Rc<App>,
    class: u32,
    name: String,
    source: Source,
    id: Option<u32>,
) {
    let t = teach(app);
    let hash = sha256_hex(source.bytes());
    if let Some(same) = t.photos.borrow().iter().find(|p| p.hash == hash) {
        let in_class = class_name(app, same.class).unwrap_or_default();
        log(&format!(
            "{name} is already in {in_class} (as {}): it was not added again.",
            same.name
        ));
        return;
    }
    let (features, crop) = match features_of(app, &source).await {
        Ok(found) => found,
        Err(e) => {
            log(&format!("{name} was not added: {}", e.message()));
            return;
        }
    };
    if class_name(app, class).is_none() {
        log(&format!(
            "{name} was not added: its class was removed meanwhile."
        ));
        return;
    }
    let thumbnail = encode_thumbnail(&crop);
    let crop_png = encode_png(&crop);
    let record = PhotoRecord {
        id: id.unwrap_or_else(|| next_id(app)),
        class,
        name,
        hash,
        backbone: t.backbone.borrow().clone(),
        features,
        thumbnail,
    };
    let store = t.store.borrow().clone();
    if let Some(store) = store {
        if let Err(e) = store.put_photo(&record, Some(&crop_png)).await {
            log(&if e.full {
                format!(
                    "Storage is full: {} was not added. The {} photos kept so far are safe; \
                     remove some photos or free space in the browser, then add it again.",
                    record.name,
                    t.photos.borrow().len()
                )
            } else {
                format!("{} was not added: it could not be kept ({e}).", record.name)
            });
            return;
        }
    }
    if class_name(app, class).is_none() {
        // Its class was removed while it was being kept: take it out again.
        log(&format!(
            "{} was not added: its class was removed meanwhile.",
            record.name
        ));
        let store = t.store.borrow().clone();
        if let Some(store) = store {
            let _ = store.delete_photo(record.id).await;
        }
        return;
    }
    show_photo(app, record);
    stale_report(app);
    refresh(app);
}

pub(super) fn encode_thumbnail(crop: &image::RgbImage) -> Vec<u8> {
    let small = image::imageops::thumbnail(crop, THUMBNAIL_SIDE, THUMBNAIL_SIDE);
    let mut out = Vec::new();
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(&small);
    out
}

pub(super) fn encode_png(crop: &image::RgbImage) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    let _ = image::codecs::png::PngEncoder::new(&mut out).write_image(
        crop.as_raw(),
        crop.width(),
        crop.height(),
        image::ExtendedColorType::Rgb8,
    );
    out
}

/// A photo's thumbnail in its class: image, class selector (move it), remove button.
pub(super) fn show_photo(app: &Rc<App>, record: PhotoRecord) {
    let t = teach(app);
    let blob = Blob::new_with_options(&record.thumbnail[..], Some("image/jpeg"));
    let url = Rc::new(ObjectUrl::from(blob));
    let figure: HtmlElement = element("figure");
    figure.set_class_name("thumb");
    let _ = figure.set_attribute("data-photo-id", &record.id.to_string());
    let _ = figure.set_attribute("title", &record.name);
    let img: HtmlImageElement = element("img");
    // Decoded only when scrolled into view: a project of thousands stays light.
    let _ = img.set_attribute("loading", "lazy");
    img.set_src(&url);
    img.set_alt(&record.name);
    let (select, remove) = photo_controls(app, record.id, &record.name);
    let caption: HtmlElement = element("figcaption");
    let _ = caption.append_child(&select);
    let _ = caption.append_child(&remove);
    let _ = figure.append_child(&img);
    let _ = figure.append_child(&caption);
    let class = t
        .classes
        .borrow()
        .iter()
        .find(|c| c.id == record.class)
        .map(|c| c.thumbs.clone());
    if let Some(thumbs) = class {
        let _ = thumbs.prepend_with_node_1(&figure);
    }
    t.next_id.set(t.next_id.get().max(record.id + 1));
    t.photos.borrow_mut().push(Photo {
        id: record.id,
        class: record.class,
        name: record.name,
        hash: record.hash,
        backbone: record.backbone,
        features: Rc::new(record.features),
        thumbnail: Rc::new(record.thumbnail),
        url,
        figure,
        select,
    });
}

/// A class selector and a remove button acting on photo `id` (in its thumbnail, and in the
/// list of wrong validation photos).
pub(super) fn photo_controls(
    app: &Rc<App>,
    id: u32,
    name: &str,
) -> (HtmlSelectElement, HtmlButtonElement) {
    let select: HtmlSelectElement = element("select");
    let _ = select.set_attribute("aria-label", &format!("Class of {name}"));
    fill_class_options(&select, &teach(app).classes.borrow(), u32::MAX);
    let remove: HtmlButtonElement = element("button");
    remove.set_type("button");
    remove.set_class_name("remove");
    remove.set_text_content(Some("×"));
    let _ = remove.set_attribute("aria-label", &format!("Remove {name}"));
    let on_move = {
        let (app, picker) = (app.clone(), select.clone());
        EventListener::new(&select, "change", move |_| {
            if let Ok(class) = picker.value().parse() {
                move_photo(&app, id, class);
            }
        })
    };
    let on_remove = {
        let app = app.clone();
        EventListener::new(&remove, "click", move |_| {
            remove_photo(&app, id);
            stale_report(&app);
            refresh(&app);
        })
    };
    on_move.forget();
    on_remove.forget();
    (select, remove)
}

pub(super) fn move_photo(app: &Rc<App>, id: u32, class: u32) {
    let t = teach(app);
    let mut photos = t.photos.borrow_mut();
    let Some(photo) = photos.iter_mut().find(|p| p.id == id) else {
        return;
    };
    if photo.class == class {
        return;
    }
    photo.class = class;
    if let Some(target) = t.classes.borrow().iter().find(|c| c.id == class) {
        let _ = target.thumbs.prepend_with_node_1(&photo.figure);
    }
    let record = photo.record();
    drop(photos);
    drop_wrong_row(id);
    if let Some(store) = t.store.borrow().clone() {
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = store.put_photo(&record, None).await {
                log(&format!(
                    "The move of {} could not be kept: {e}",
                    record.name
                ));
            }
        });
    }
    stale_report(app);
    refresh(app);
}

/// A photo moved or removed is fixed: its row in the list of wrong validation photos goes.
pub(super) fn drop_wrong_row(id: u32) {
    let row = super::super::dom::document()
        .query_selector(&format!("#teach-wrong [data-photo-id=\"{id}\"]"))
        .ok()
        .flatten();
    if let Some(row) = row {
        row.remove();
    }
}

pub(super) fn remove_photo(app: &Rc<App>, id: u32) {
    let t = teach(app);
    let mut photos = t.photos.borrow_mut();
    let Some(i) = photos.iter().position(|p| p.id == id) else {
        return;
    };
    let photo = photos.remove(i);
    photo.figure.remove();
    drop(photos);
    drop_wrong_row(id);
    if let Some(store) = t.store.borrow().clone() {
        wasm_bindgen_futures::spawn_local(async move {
            if let Err(e) = store.delete_photo(id).await {
                log(&format!("The removal of a photo could not be kept: {e}"));
            }
        });
    }
}

/// The photos changed since the last training: its report no longer describes them.
pub(super) fn stale_report(app: &App) {
    if teach(app).last.borrow().is_some() {
        let _ = by_id::<HtmlElement>("teach-report").set_attribute("data-stale", "true");
    }
}
