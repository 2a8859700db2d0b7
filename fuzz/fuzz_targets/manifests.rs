//! Any text as a manifest file: parsing and translation report errors, never panic.
#![no_main]

use std::path::Path;

use ferry_controller::ControllerConfig;
use ferry_controller::manifests::load_texts;
use ferry_controller::translate::translate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(loaded) = load_texts([(Path::new("fuzz.yaml"), text)]) {
        let _ = translate(&loaded.index, &ControllerConfig::default());
    }
});
