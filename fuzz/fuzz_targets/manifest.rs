//! Any bytes as `weights/manifest.json`: parse, look up what it lists, verify a file against it.
//! A manifest that parses names only plain files of its own directory, and reads back as itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lucy::weights::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    for name in manifest.files.keys() {
        assert!(!name.is_empty() && !name.contains(['/', '\\']) && name != ".." && name != ".");
        let _ = manifest.verify(name, data);
    }
    for precision in [lucy::Precision::F32, lucy::Precision::Int8] {
        if let Ok(file) = manifest.backbone_file(precision) {
            assert!(manifest.files.contains_key(file));
        }
    }
    for head in &manifest.heads {
        assert!(manifest.files.contains_key(&head.file));
        assert_eq!(manifest.head(&head.name).unwrap(), head);
    }
    assert_eq!(Manifest::parse(manifest.to_json().as_bytes()).unwrap(), manifest);
});
