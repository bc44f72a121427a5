//! Proof files (`server/src/proof_file.rs`) on hostile bytes: format detection, the three
//! strict parsers, writing back, and offline verification against a fixed trusted key.
//!
//! Nothing may panic; a parsed file written back as JSON parses to the same file; and a
//! verification that succeeds must be backed by an independent check: the checkpoint note
//! opens with a trusted key and signs the sizes, and the proof verifies against its root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vouch_fuzz::trusted;
use vouch_ledger_core::Hash;
use vouch_ledger_core::checkpoint::open_checkpoint;
use vouch_ledger_core::entry::EntryView;
use vouch_ledger_core::proof::{
    ConsistencyProof, InclusionProof, verify_consistency, verify_inclusion,
};
use vouch_server::proof_file::{
    CheckpointFile, ConsistencyProofFile, FileFormat, InclusionProofFile, OldRoot, detect_format,
    verify_checkpoint_file, verify_checkpoint_note, verify_consistency_file, verify_inclusion_file,
};

fuzz_target!(|bytes: &[u8]| {
    let known = trusted();
    let format = detect_format(bytes);

    let inclusion = InclusionProofFile::parse(bytes);
    if let Ok(file) = &inclusion {
        assert_eq!(format, Ok(FileFormat::InclusionProof));
        let json = file.to_json();
        assert_eq!(
            InclusionProofFile::parse(json.as_bytes()).as_ref(),
            Ok(file)
        );
        if let Ok(verified) = verify_inclusion_file(file, known) {
            let (checkpoint, _) =
                open_checkpoint(file.checkpoint.as_bytes(), known).expect("checkpoint opens");
            assert_eq!(verified.checkpoint.checkpoint, checkpoint);
            assert!(!verified.checkpoint.signed_by.is_empty());
            assert_eq!(checkpoint.size, file.tree_size);
            let proof = InclusionProof {
                index: file.index,
                size: file.tree_size,
                path: file.path.clone(),
            };
            assert_eq!(
                verify_inclusion(file.hash, &file.leaf_hash, &proof, &checkpoint.root),
                Ok(())
            );
            if let Some(leaf) = &file.leaf_bytes {
                assert_eq!(file.hash.leaf_hash(leaf), file.leaf_hash);
                let view = EntryView::parse(leaf).expect("verified leaf bytes are an envelope");
                assert_eq!(view.index(), file.index);
            }
        }
    }

    let consistency = ConsistencyProofFile::parse(bytes);
    if let Ok(file) = &consistency {
        assert_eq!(format, Ok(FileFormat::ConsistencyProof));
        let json = file.to_json();
        assert_eq!(
            ConsistencyProofFile::parse(json.as_bytes()).as_ref(),
            Ok(file)
        );
        // With the old checkpoint from the file, and with an old root from the auditor.
        let auditor_root = OldRoot::Hash(Hash([0x5a; 32]));
        for old in [None, Some(&auditor_root)] {
            let Ok(verified) = verify_consistency_file(file, known, old) else {
                continue;
            };
            let (new_cp, _) = open_checkpoint(file.new_checkpoint.as_bytes(), known)
                .expect("new checkpoint opens");
            assert_eq!(verified.checkpoint.checkpoint, new_cp);
            assert_eq!(new_cp.size, file.new_size);
            let old_root = match old {
                Some(OldRoot::Hash(root)) => *root,
                _ => {
                    let note = file.old_checkpoint.as_ref().expect("an old checkpoint");
                    let (old_cp, _) =
                        open_checkpoint(note.as_bytes(), known).expect("old checkpoint opens");
                    assert_eq!(old_cp.size, file.old_size);
                    old_cp.root
                }
            };
            let proof = ConsistencyProof {
                old_size: file.old_size,
                new_size: file.new_size,
                path: file.path.clone(),
            };
            assert_eq!(
                verify_consistency(file.hash, &proof, &old_root, &new_cp.root),
                Ok(())
            );
        }
    }

    let checkpoint = CheckpointFile::parse(bytes);
    if let Ok(file) = &checkpoint {
        assert_eq!(format, Ok(FileFormat::Checkpoint));
        let json = file.to_json();
        assert_eq!(CheckpointFile::parse(json.as_bytes()).as_ref(), Ok(file));
        if let Ok(verified) = verify_checkpoint_file(file, known) {
            let (cp, _) = open_checkpoint(file.note.as_bytes(), known).expect("note opens");
            assert_eq!(verified.checkpoint.checkpoint, cp);
            assert_eq!(cp.origin, file.origin);
            assert_eq!(cp.size, file.tree_size);
            assert_eq!(cp.root, file.root_hash);
        }
    }

    // At most one parser accepts a document, and only the one its format names.
    let accepted = [inclusion.is_ok(), consistency.is_ok(), checkpoint.is_ok()];
    assert!(accepted.iter().filter(|&&a| a).count() <= 1);

    // A bare note, as `vouch checkpoint` prints it.
    if let Ok(text) = std::str::from_utf8(bytes) {
        if let Ok(verified) = verify_checkpoint_note(text, known) {
            let (cp, _) = open_checkpoint(bytes, known).expect("note opens");
            assert_eq!(verified.checkpoint.checkpoint, cp);
        }
    }
});
