//! Any bytes as a project file (`lucy train PROJECT`: downloaded from the page, then given to
//! the CLI from anywhere): decoded, and small ones taught.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucy::fit::{Project, teach};
use lucy::model::FEATURES;

fuzz_target!(|data: &[u8]| {
    let Ok(project) = Project::decode(data) else {
        return;
    };
    assert_eq!(project.features.len(), project.lesson.labels.len() * FEATURES);
    assert_eq!(project.photos.len(), project.lesson.labels.len());
    // Teaching is linear in photos x epochs: keep the fuzzer fast.
    let mut lesson = project.lesson.clone();
    if lesson.labels.len() > 64 || lesson.config.epochs > 3 {
        return;
    }
    lesson.config.patience = lesson.config.patience.map(|p| p.min(3));
    if let Ok((head, taught)) = teach(&lesson, &project.features, &mut |_| {}) {
        let decoded = lucy::weights::bundle::decode_head("head", &head).expect("a head file");
        assert_eq!(decoded.labels, lesson.classes);
        assert!(taught.history.len() <= lesson.config.epochs);
    }
});
