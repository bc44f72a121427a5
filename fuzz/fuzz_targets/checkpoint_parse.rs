//! Arbitrary text through `Checkpoint::parse`: it never panics, and a checkpoint it accepts
//! encodes back to exactly the same text (one checkpoint has one text, so a signature over
//! the text binds the fields).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_ledger_core::checkpoint::Checkpoint;

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(checkpoint) = Checkpoint::parse(text) else {
        return;
    };
    checkpoint.validate().expect("a parsed checkpoint is valid");
    let encoded = checkpoint.encode().expect("a parsed checkpoint encodes");
    assert_eq!(encoded, text, "the checkpoint text is not canonical");
    assert_eq!(Checkpoint::parse(&encoded).as_ref(), Ok(&checkpoint));
});
