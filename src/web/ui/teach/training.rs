//! Train: the lesson from the kept features, fitted in the model's worker with progress, then
//! its report (curve, matrix, wrong photos) and the new head put to use.

use super::*;

pub(super) async fn train(app: &Rc<App>) {
    let t = teach(app);
    let Some(model) = app.model() else {
        status("The model is not ready.");
        return;
    };
    let classes: Vec<(u32, String)> = t
        .classes
        .borrow()
        .iter()
        .map(|c| (c.id, c.name.clone()))
        .collect();
    let (mut ids, mut names, mut labels, mut features) = (vec![], vec![], vec![], vec![]);
    for photo in t.photos.borrow().iter() {
        if let Some(label) = classes.iter().position(|(id, _)| *id == photo.class) {
            ids.push(photo.id);
            names.push(photo.name.clone());
            labels.push(label);
            features.extend_from_slice(&photo.features);
        }
    }
    let lesson = Lesson::new(
        HEAD_NAME,
        classes.iter().map(|(_, n)| n.clone()).collect(),
        labels,
    );
    let epochs = lesson.config.epochs;
    let bar: HtmlProgressElement = by_id("teach-progress");
    bar.set_max(epochs as f64);
    bar.set_value(0.0);
    bar.set_hidden(false);
    by_id::<HtmlButtonElement>("teach-train").set_disabled(true);
    status(&format!("Training on {} photos…", ids.len()));
    let started = now_ms();
    let on_epoch = {
        let bar = bar.clone();
        Box::new(move |epoch: EpochMetrics| {
            bar.set_value(epoch.epoch as f64);
            status(&format!(
                "Training: epoch {} of {epochs}, validation accuracy {:.2}",
                epoch.epoch, epoch.val_accuracy
            ));
        })
    };
    let reply = model
        .engine
        .call_with_progress(
            Request::Train {
                lesson: lesson.clone(),
            },
            vec![Uint8Array::from(&f32_bytes(&features)[..])],
            on_epoch,
        )
        .await;
    let seconds = (now_ms() - started) / 1000.0;
    bar.set_hidden(true);
    by_id::<HtmlButtonElement>("teach-train").set_disabled(false);
    let (taught, head) = match reply {
        Ok((Reply::Trained { taught }, bytes)) if !bytes.is_empty() => (taught, bytes[0].to_vec()),
        Ok(_) => {
            status("Training failed: unexpected reply from the model.");
            return;
        }
        Err(e) => {
            status(&format!("Not trained: {}", e.message()));
            return;
        }
    };
    let _ = by_id::<HtmlElement>("teach-status")
        .set_attribute("data-seconds", &format!("{seconds:.3}"));
    let backbone = t.backbone.borrow().clone();
    let lesson_json = serde_json::to_string(&lesson).expect("a lesson serialises");
    *t.last.borrow_mut() = Some(Lessoned {
        head: head.clone(),
        project: Some(Project {
            lesson,
            photos: names,
            backbone_sha256: backbone.clone(),
            features,
        }),
    });
    show_report(app, &taught, &ids);
    let accuracy = taught.confusion.accuracy;
    match super::super::heads::use_taught(app, Rc::new(head.clone())).await {
        Ok(()) => status(&format!(
            "Trained on {} photos in {seconds:.2} s: validation accuracy {accuracy:.2} (epoch {} of {} kept). \
             The new head is in use for photos and the camera.",
            ids.len(),
            taught.best_epoch,
            taught.history.len()
        )),
        Err(e) => status(&format!(
            "Trained (validation accuracy {accuracy:.2}), but the head could not be used: {e}"
        )),
    }
    let store = t.store.borrow().clone();
    if let Some(store) = store {
        let record = HeadRecord {
            head,
            taught: serde_json::to_string(&taught).expect("taught serialises"),
            photos: ids,
            lesson: lesson_json,
            backbone,
        };
        if let Err(e) = store.put_head(&record).await {
            log(&format!(
                "The new head could not be kept for the next visit: {e}"
            ));
        }
    }
    refresh(app);
}

/// The report of a lesson over `ids` (the photos in the lesson's order): curve, matrix,
/// the wrong validation photos worst first, and which photos were held out.
pub(super) fn show_report(app: &Rc<App>, taught: &Taught, ids: &[u32]) {
    let list = report::show(taught);
    let _ = by_id::<HtmlElement>("teach-report").remove_attribute("data-stale");
    let t = teach(app);
    let photos = t.photos.borrow();
    for photo in photos.iter() {
        let _ = photo.figure.set_attribute("data-split", "train");
    }
    let classes = &taught.confusion.classes;
    let mut wrong = Vec::new();
    for (&index, probabilities) in taught.val.iter().zip(&taught.val_probabilities) {
        let Some(photo) = ids
            .get(index)
            .and_then(|id| photos.iter().find(|p| p.id == *id))
        else {
            continue;
        };
        let _ = photo.figure.set_attribute("data-split", "val");
        let truth = t
            .classes
            .borrow()
            .iter()
            .find(|c| c.id == photo.class)
            .and_then(|c| classes.iter().position(|n| *n == c.name));
        let predicted = crate::fit::argmax(probabilities);
        if let Some(truth) = truth
            && truth != predicted
        {
            wrong.push((
                probabilities[truth],
                photo,
                predicted,
                probabilities[predicted],
            ));
        }
    }
    wrong.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, photo, predicted, p) in wrong {
        let item: HtmlElement = element("li");
        let _ = item.set_attribute("data-photo-id", &photo.id.to_string());
        let img: HtmlImageElement = element("img");
        img.set_src(&photo.url);
        img.set_alt(&photo.name);
        let truth = class_name(app, photo.class).unwrap_or_default();
        let words = text(
            "span",
            "",
            &format!(
                "{}: {truth}, taken for {} ({:.0} %)",
                photo.name,
                classes[predicted],
                100.0 * p
            ),
        );
        let (select, remove) = photo_controls(app, photo.id, &photo.name);
        fill_class_options(&select, &t.classes.borrow(), photo.class);
        for node in [
            img.unchecked_ref::<HtmlElement>(),
            &words,
            select.unchecked_ref(),
            remove.unchecked_ref(),
        ] {
            let _ = item.append_child(node);
        }
        let _ = list.append_child(&item);
    }
}
