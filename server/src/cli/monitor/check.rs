//! The monitor's checks, as pure functions of what it verified before and what the server
//! sends now: no I/O, so each rule is tested on its own.
//!
//! - [`compare`] places a validly signed checkpoint next to the state: the first one, the
//!   same one, a larger tree (which then needs a consistency proof, [`check_consistency`]),
//!   or an [`Alert`]: a rollback, a fork, another origin or hash function.
//! - [`check_entry`] checks one served entry: its index, its envelope, its leaf hash.
//! - [`Rebuild`] folds served entries into a [`Frontier`] and compares the roots it reaches
//!   with the signed ones.
//! - [`Watch`] picks the decision entries that match `--watch-subject`, `--watch-outcome`
//!   and `--watch-policy`.

use std::fmt;

use vouch_ledger_core::checkpoint::Checkpoint;
use vouch_ledger_core::entry::{EntryKind, EntryView};
use vouch_ledger_core::proof::verify_consistency_bytes;
use vouch_ledger_core::{Frontier, Hash, HashAlg, TreeSize};
use vouch_query::evaluation::Outcome;
use vouch_query::governance::DecisionEntry;
use vouch_query::governance::record::DECISION_CONTENT_TYPE;
use vouch_query::request::Field;

use super::state::MonitorState;
use crate::cli::exit::{INCONSISTENT, VERIFICATION};

/// Where a validly signed checkpoint stands next to the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// There is no state yet: the checkpoint is trusted on first use.
    First,
    /// The checkpoint the state holds (same size and root).
    Unchanged,
    /// A larger tree: a consistency proof from the state's size must join them.
    Grew {
        /// The state's size.
        old_size: TreeSize,
        /// The state's root.
        old_root: Hash,
    },
}

/// Something the server sent that contradicts what was verified before, or that does not
/// verify at all. Each is reported as an `ALERT` line and ends the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Alert {
    /// The checkpoint is not signed by a trusted key, or is not a checkpoint.
    BadSignature {
        /// Why the note did not open.
        reason: String,
    },
    /// The ledger's checkpoint origin or hash function is not the state's.
    Identity {
        /// What changed, with both values.
        what: String,
    },
    /// A smaller tree than the one verified before.
    Rollback {
        /// The state's size.
        state_size: TreeSize,
        /// The server's size now.
        server_size: TreeSize,
    },
    /// Two signed checkpoints of one size with different roots.
    Fork {
        /// The size.
        size: TreeSize,
        /// The root verified before.
        state_root: Hash,
        /// The root the server signs now.
        server_root: Hash,
    },
    /// No valid consistency proof joins the state's checkpoint to the server's.
    Inconsistent {
        /// The state's size.
        old_size: TreeSize,
        /// The server's size.
        new_size: TreeSize,
        /// Why the proof failed.
        reason: String,
    },
    /// The entries the server serves do not rebuild a signed root, or one is malformed.
    Entries {
        /// What did not match.
        reason: String,
    },
}

impl Alert {
    /// The alert's name in `ALERT` lines and in the JSON `alert` member.
    pub fn kind(&self) -> &'static str {
        match self {
            Alert::BadSignature { .. } => "bad-signature",
            Alert::Identity { .. } => "identity",
            Alert::Rollback { .. } => "rollback",
            Alert::Fork { .. } => "fork",
            Alert::Inconsistent { .. } => "inconsistent",
            Alert::Entries { .. } => "entries",
        }
    }

    /// The exit code the monitor ends with: [`VERIFICATION`] for a checkpoint that does not
    /// verify, [`INCONSISTENT`] for a log that contradicts itself.
    pub fn exit_code(&self) -> u8 {
        match self {
            Alert::BadSignature { .. } => VERIFICATION,
            _ => INCONSISTENT,
        }
    }
}

impl fmt::Display for Alert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alert::BadSignature { reason } => write!(
                f,
                "the server's checkpoint does not verify with the trusted keys: {reason}"
            ),
            Alert::Identity { what } => write!(f, "the ledger is not the one monitored: {what}"),
            Alert::Rollback {
                state_size,
                server_size,
            } => write!(
                f,
                "rollback: the server's checkpoint has tree size {server_size}, smaller than the tree size {state_size} verified before"
            ),
            Alert::Fork {
                size,
                state_root,
                server_root,
            } => write!(
                f,
                "fork: two signed checkpoints of tree size {size} with different roots: {state_root} verified before, {server_root} now"
            ),
            Alert::Inconsistent {
                old_size,
                new_size,
                reason,
            } => write!(
                f,
                "fork: the server's checkpoint of tree size {new_size} does not extend the one of tree size {old_size} verified before: the consistency proof {reason}"
            ),
            Alert::Entries { reason } => write!(f, "the served entries do not match: {reason}"),
        }
    }
}

/// Places a checkpoint whose signature verified next to `state`.
///
/// # Errors
///
/// [`Alert::Identity`] for another origin or hash function, [`Alert::Rollback`] for a
/// smaller tree, [`Alert::Fork`] for the same size with another root, and
/// [`Alert::Inconsistent`] for a tree of size 0 whose root is not the empty root.
pub fn compare(
    state: Option<&MonitorState>,
    hash: HashAlg,
    checkpoint: &Checkpoint,
) -> Result<Step, Alert> {
    if checkpoint.size.0 == 0 && checkpoint.root != hash.empty_root() {
        return Err(Alert::Inconsistent {
            old_size: TreeSize(0),
            new_size: TreeSize(0),
            reason: format!(
                "cannot exist: an empty tree has the root {}, not {}",
                hash.empty_root(),
                checkpoint.root
            ),
        });
    }
    let Some(state) = state else {
        return Ok(Step::First);
    };
    if checkpoint.origin != state.origin {
        return Err(Alert::Identity {
            what: format!(
                "its checkpoints have origin {:?}, but the state's have origin {:?}",
                checkpoint.origin, state.origin
            ),
        });
    }
    if hash != state.hash {
        return Err(Alert::Identity {
            what: format!(
                "the server says it hashes with {hash}, but the state's checkpoints are {}",
                state.hash
            ),
        });
    }
    match checkpoint.size.cmp(&state.tree_size) {
        std::cmp::Ordering::Less => Err(Alert::Rollback {
            state_size: state.tree_size,
            server_size: checkpoint.size,
        }),
        std::cmp::Ordering::Equal if checkpoint.root == state.root => Ok(Step::Unchanged),
        std::cmp::Ordering::Equal => Err(Alert::Fork {
            size: state.tree_size,
            state_root: state.root,
            server_root: checkpoint.root,
        }),
        std::cmp::Ordering::Greater => Ok(Step::Grew {
            old_size: state.tree_size,
            old_root: state.root,
        }),
    }
}

/// Checks the consistency proof `path` from `(old_size, old_root)` to `new`. From the empty
/// tree no proof is needed.
///
/// # Errors
///
/// [`Alert::Inconsistent`] if the proof does not join the two roots.
pub fn check_consistency<P: AsRef<[u8]>>(
    hash: HashAlg,
    old_size: TreeSize,
    old_root: &Hash,
    new: &Checkpoint,
    path: &[P],
) -> Result<(), Alert> {
    if old_size.0 == 0 {
        return Ok(());
    }
    verify_consistency_bytes(
        hash,
        old_size,
        new.size,
        path,
        old_root.as_bytes(),
        new.root.as_bytes(),
    )
    .map_err(|e| Alert::Inconsistent {
        old_size,
        new_size: new.size,
        reason: format!("fails: {e}"),
    })
}

/// Checks one served entry: that it is entry `index`, that its leaf bytes are a valid
/// envelope of that index, and that the leaf hash the server sent is theirs. Returns the
/// parsed envelope and its leaf hash.
///
/// # Errors
///
/// [`Alert::Entries`] naming the entry and what is wrong.
pub fn check_entry<'a>(
    hash: HashAlg,
    index: u64,
    served_index: u64,
    leaf_bytes: &'a [u8],
    served_leaf_hash: &[u8],
) -> Result<(EntryView<'a>, Hash), Alert> {
    let wrong = |reason: String| Alert::Entries {
        reason: format!("entry {index}: {reason}"),
    };
    if served_index != index {
        return Err(wrong(format!(
            "the server sent entry {served_index} in its place"
        )));
    }
    let view = EntryView::parse(leaf_bytes)
        .map_err(|e| wrong(format!("the leaf bytes are not an entry envelope: {e}")))?;
    if view.index().0 != index {
        return Err(wrong(format!(
            "the leaf bytes are those of entry {}",
            view.index()
        )));
    }
    let leaf = hash.leaf_hash(leaf_bytes);
    if served_leaf_hash != leaf.as_bytes() {
        return Err(wrong(format!(
            "the server's leaf hash {} is not the hash {leaf} of its leaf bytes",
            hex::encode(served_leaf_hash)
        )));
    }
    Ok((view, leaf))
}

/// Rebuilds the tree from served leaf hashes and checks the roots it passes through.
#[derive(Debug)]
pub struct Rebuild {
    frontier: Frontier,
    /// Signed roots to meet on the way, by size, ascending.
    expect: Vec<(TreeSize, Hash)>,
}

impl Rebuild {
    /// Continues from `frontier`, expecting the root `root` at each `(size, root)` of
    /// `expect` (sizes above the frontier's).
    pub fn new(frontier: Frontier, mut expect: Vec<(TreeSize, Hash)>) -> Self {
        expect.sort_by_key(|&(size, _)| size);
        expect.retain(|&(size, _)| size > frontier.size());
        Self { frontier, expect }
    }

    /// The number of leaves so far: the index of the next entry.
    pub fn size(&self) -> TreeSize {
        self.frontier.size()
    }

    /// Adds the next leaf hash.
    ///
    /// # Errors
    ///
    /// [`Alert::Entries`] if the tree reaches an expected size with another root.
    pub fn push(&mut self, leaf: Hash) -> Result<(), Alert> {
        self.frontier.push(leaf, |_, _| {});
        if let Some(&(size, root)) = self.expect.first()
            && size == self.frontier.size()
        {
            self.expect.remove(0);
            let rebuilt = self.frontier.root();
            if rebuilt != root {
                return Err(Alert::Entries {
                    reason: format!(
                        "entries 0 to {} rebuild the root {rebuilt}, but the signed checkpoint of tree size {size} has root {root}",
                        size.0 - 1
                    ),
                });
            }
        }
        Ok(())
    }

    /// The frontier, once every expected size was reached.
    ///
    /// # Errors
    ///
    /// [`Alert::Entries`] if the entries ended before an expected size.
    pub fn finish(self) -> Result<Frontier, Alert> {
        match self.expect.first() {
            Some(&(size, _)) => Err(Alert::Entries {
                reason: format!(
                    "the server sent {} entries where the signed checkpoint covers {size}",
                    self.frontier.size()
                ),
            }),
            None => Ok(self.frontier),
        }
    }
}

/// A recorded decision that a watch filter matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionMatch {
    /// The entry's index.
    pub index: u64,
    /// The decision id.
    pub id: String,
    /// The request's subject.
    pub subject: String,
    /// The request's environment.
    pub environment: String,
    /// ALLOW, BLOCK or SKIPPED.
    pub outcome: Outcome,
    /// The policies that matched the request, sorted.
    pub policies: Vec<String>,
    /// The bundle hash the decision was made with.
    pub bundle: String,
}

/// The watch filters: a decision matches if it matches every filter given, and a filter
/// given several times matches any of its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    /// `--watch-subject`.
    pub subjects: Vec<String>,
    /// `--watch-outcome`.
    pub outcomes: Vec<Outcome>,
    /// `--watch-policy`.
    pub policies: Vec<String>,
}

impl Watch {
    /// Whether no filter is given (nothing is watched).
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && self.outcomes.is_empty() && self.policies.is_empty()
    }

    /// The decision `entry` records, if it is a decision entry the filters match. Entries
    /// of other kinds, and decision payloads that do not read strictly, match nothing.
    pub fn matches(&self, entry: &EntryView<'_>) -> Option<DecisionMatch> {
        if self.is_empty()
            || entry.kind() != EntryKind::Decision
            || entry.content_type() != DECISION_CONTENT_TYPE
        {
            return None;
        }
        let decision = DecisionEntry::from_json(entry.payload()).ok()?;
        let request = &decision.record.request;
        let evaluation = &decision.record.evaluation;
        let policies: Vec<String> = evaluation
            .matched_policies
            .iter()
            .map(|p| p.policy.clone())
            .collect();
        let wanted = (self.subjects.is_empty()
            || self.subjects.iter().any(|s| s == request.subject()))
            && (self.outcomes.is_empty() || self.outcomes.contains(&evaluation.outcome))
            && (self.policies.is_empty() || self.policies.iter().any(|p| policies.contains(p)));
        wanted.then(|| DecisionMatch {
            index: entry.index().0,
            id: decision.id.clone(),
            subject: request.subject().to_owned(),
            environment: request
                .field(Field::Environment)
                .unwrap_or_default()
                .to_owned(),
            outcome: evaluation.outcome,
            policies,
            bundle: decision.record.bundle.clone(),
        })
    }
}

/// Parses `--watch-outcome`: `allow`, `block` or `skipped`, in any case.
///
/// # Errors
///
/// A message naming the accepted values.
pub fn parse_outcome(text: &str) -> Result<Outcome, String> {
    match text.to_ascii_lowercase().as_str() {
        "allow" => Ok(Outcome::Allow),
        "block" => Ok(Outcome::Block),
        "skipped" => Ok(Outcome::Skipped),
        _ => Err(format!(
            "{text:?} is not an outcome: expected allow, block or skipped"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use vouch_ledger_core::entry::{EntryDraft, Timestamp};
    use vouch_ledger_core::merkle::MemoryTree;
    use vouch_ledger_core::proof::prove_consistency;
    use vouch_ledger_core::{EntryIndex, Signer};
    use vouch_query::{DecisionRecord, Format, Request, SourceBundle, compile};

    use super::*;

    const ALG: HashAlg = HashAlg::Blake3;
    const ORIGIN: &str = "example.com/log";

    /// Envelopes of record entries `0..n`.
    fn envelopes(n: u64) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let draft = EntryDraft::new(
                    EntryKind::Record,
                    None,
                    String::new(),
                    format!("entry {i}").into_bytes(),
                )
                .unwrap();
                let mut out = Vec::new();
                draft.encode_at(EntryIndex(i), Timestamp::from_unix_nanos(i), &mut out);
                out
            })
            .collect()
    }

    fn tree(leaves: &[Vec<u8>]) -> MemoryTree {
        MemoryTree::from_leaf_hashes(ALG, leaves.iter().map(|l| ALG.leaf_hash(l)))
    }

    fn checkpoint(tree: &MemoryTree, size: u64) -> Checkpoint {
        Checkpoint::new(
            ORIGIN,
            TreeSize(size),
            tree.root_at(TreeSize(size)).unwrap(),
        )
    }

    fn state_at(tree: &MemoryTree, size: u64) -> MonitorState {
        let signer = Signer::from_seed(ORIGIN, &[1; 32]).unwrap();
        let cp = checkpoint(tree, size);
        let note = String::from_utf8(cp.sign(&[&signer]).unwrap()).unwrap();
        MonitorState::new("default", ALG, &cp, &note, None)
    }

    #[test]
    fn checkpoints_are_placed_next_to_the_state() {
        let leaves = envelopes(9);
        let t = tree(&leaves);
        let s = state_at(&t, 5);
        assert_eq!(compare(None, ALG, &checkpoint(&t, 5)), Ok(Step::First));
        assert_eq!(
            compare(Some(&s), ALG, &checkpoint(&t, 5)),
            Ok(Step::Unchanged)
        );
        assert_eq!(
            compare(Some(&s), ALG, &checkpoint(&t, 9)),
            Ok(Step::Grew {
                old_size: TreeSize(5),
                old_root: s.root
            })
        );
        let rollback = compare(Some(&s), ALG, &checkpoint(&t, 4)).unwrap_err();
        assert_eq!(
            rollback,
            Alert::Rollback {
                state_size: TreeSize(5),
                server_size: TreeSize(4)
            }
        );
        assert_eq!(rollback.kind(), "rollback");
        assert_eq!(rollback.exit_code(), INCONSISTENT);

        // The same size with other entries: a fork.
        let mut other = envelopes(5);
        other[4] = envelopes(6)[5].clone();
        let forked = checkpoint(&tree(&other), 5);
        let fork = compare(Some(&s), ALG, &forked).unwrap_err();
        assert!(
            fork.to_string()
                .starts_with("fork: two signed checkpoints of tree size 5 with different roots"),
            "{fork}"
        );
        assert_eq!(fork.exit_code(), INCONSISTENT);

        let mut renamed = checkpoint(&t, 9);
        renamed.origin = "example.com/other".to_owned();
        assert_eq!(
            compare(Some(&s), ALG, &renamed).unwrap_err().kind(),
            "identity"
        );
        assert_eq!(
            compare(Some(&s), HashAlg::Sha256, &checkpoint(&t, 9))
                .unwrap_err()
                .kind(),
            "identity"
        );
        let empty_with_a_root = Checkpoint::new(ORIGIN, TreeSize(0), s.root);
        assert_eq!(
            compare(None, ALG, &empty_with_a_root).unwrap_err().kind(),
            "inconsistent"
        );
        assert_eq!(
            Alert::BadSignature {
                reason: String::new()
            }
            .exit_code(),
            VERIFICATION
        );
    }

    #[test]
    fn consistency_proofs_join_only_extensions() {
        let leaves = envelopes(9);
        let t = tree(&leaves);
        let proof = prove_consistency(ALG, TreeSize(5), TreeSize(9), &t).unwrap();
        let path: Vec<Vec<u8>> = proof.path.iter().map(|h| h.as_bytes().to_vec()).collect();
        let old = t.root_at(TreeSize(5)).unwrap();
        check_consistency(ALG, TreeSize(5), &old, &checkpoint(&t, 9), &path).unwrap();
        // From the empty tree nothing needs proving.
        check_consistency::<Vec<u8>>(ALG, TreeSize(0), &ALG.empty_root(), &checkpoint(&t, 9), &[])
            .unwrap();

        // A tree that rewrote entry 2 and grew to 9: the server's honest proof for its own
        // tree does not lead from the root verified before.
        let mut rewritten = leaves.clone();
        rewritten[2] = envelopes(10)[9].clone();
        let forked = tree(&rewritten);
        let forked_proof = prove_consistency(ALG, TreeSize(5), TreeSize(9), &forked).unwrap();
        let forked_path: Vec<Vec<u8>> = forked_proof
            .path
            .iter()
            .map(|h| h.as_bytes().to_vec())
            .collect();
        let e = check_consistency(
            ALG,
            TreeSize(5),
            &old,
            &checkpoint(&forked, 9),
            &forked_path,
        )
        .unwrap_err();
        assert_eq!(e.kind(), "inconsistent");
        assert!(
            e.to_string().starts_with(
                "fork: the server's checkpoint of tree size 9 does not extend the one of tree size 5"
            ),
            "{e}"
        );
        // A truncated proof fails too.
        assert!(check_consistency(ALG, TreeSize(5), &old, &checkpoint(&t, 9), &path[1..]).is_err());
    }

    #[test]
    fn served_entries_are_checked_and_rebuild_the_signed_roots() {
        let leaves = envelopes(7);
        let t = tree(&leaves);
        let leaf = |i: usize| ALG.leaf_hash(&leaves[i]);
        let (view, hash) = check_entry(ALG, 3, 3, &leaves[3], leaf(3).as_bytes()).unwrap();
        assert_eq!((view.index().0, hash), (3, leaf(3)));
        for (index, served, bytes, claimed, expected) in [
            (3, 4, &leaves[3], leaf(3), "the server sent entry 4"),
            (
                4,
                4,
                &leaves[3],
                leaf(3),
                "the leaf bytes are those of entry 3",
            ),
            (3, 3, &leaves[3], leaf(4), "is not the hash"),
            (3, 3, &b"junk".to_vec(), leaf(3), "not an entry envelope"),
        ] {
            let e = check_entry(ALG, index, served, bytes, claimed.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), "entries");
            assert!(e.to_string().contains(expected), "{e}");
        }

        // From the empty tree through the roots at 3 and 7.
        let mut rebuild = Rebuild::new(
            Frontier::new(ALG),
            vec![
                (TreeSize(7), t.root_at(TreeSize(7)).unwrap()),
                (TreeSize(3), t.root_at(TreeSize(3)).unwrap()),
            ],
        );
        for i in 0..7 {
            rebuild.push(leaf(i)).unwrap();
        }
        assert_eq!(rebuild.finish().unwrap().root(), t.root());

        // From a stored frontier; a wrong leaf is caught at the next signed root.
        let mut rebuild = Rebuild::new(
            t.frontier_at(TreeSize(3)).unwrap(),
            vec![(TreeSize(7), t.root())],
        );
        assert_eq!(rebuild.size(), TreeSize(3));
        rebuild.push(leaf(3)).unwrap();
        rebuild.push(leaf(5)).unwrap();
        rebuild.push(leaf(5)).unwrap();
        let e = rebuild.push(leaf(6)).unwrap_err();
        assert!(
            e.to_string().contains("entries 0 to 6 rebuild the root"),
            "{e}"
        );

        // Too few entries.
        let mut short = Rebuild::new(Frontier::new(ALG), vec![(TreeSize(7), t.root())]);
        short.push(leaf(0)).unwrap();
        assert!(
            short
                .finish()
                .unwrap_err()
                .to_string()
                .contains("sent 1 entries")
        );
    }

    fn decision_envelope(request: &str, index: u64) -> Vec<u8> {
        let pack = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/policies/high-risk-production"
        );
        let source = std::fs::read_to_string(format!("{pack}/bundle.yaml")).unwrap();
        let bundle = compile(&SourceBundle::parse(&source, Format::Yaml).unwrap()).unwrap();
        let request =
            Request::from_json(&std::fs::read(format!("{pack}/requests/{request}")).unwrap())
                .unwrap();
        let record = DecisionRecord::decide(&bundle, request);
        let payload = DecisionEntry::new(record, EntryIndex(0)).to_json();
        let draft = EntryDraft::new(
            EntryKind::Decision,
            None,
            DECISION_CONTENT_TYPE.to_owned(),
            payload,
        )
        .unwrap();
        let mut out = Vec::new();
        draft.encode_at(EntryIndex(index), Timestamp::from_unix_nanos(1), &mut out);
        out
    }

    #[test]
    fn watch_filters_pick_decisions() {
        let block = decision_envelope("block-one-approval.json", 1);
        let allow = decision_envelope("allow-security-and-manager.json", 2);
        let record = &envelopes(1)[0];
        let block = EntryView::parse(&block).unwrap();
        let allow = EntryView::parse(&allow).unwrap();
        let record = EntryView::parse(record).unwrap();

        assert_eq!(Watch::default().matches(&block), None);
        let blocks = Watch {
            outcomes: vec![parse_outcome("BLOCK").unwrap()],
            ..Watch::default()
        };
        let m = blocks.matches(&block).unwrap();
        assert_eq!(m.index, 1);
        assert_eq!(m.outcome, Outcome::Block);
        assert_eq!(m.subject, "CHG-1042");
        assert_eq!(m.environment, "production");
        assert!(m.id.starts_with("sha256:"), "{m:?}");
        assert!(
            m.policies.contains(&"high-risk-production".to_owned()),
            "{m:?}"
        );
        assert_eq!(blocks.matches(&allow), None);
        assert_eq!(blocks.matches(&record), None);

        let by_policy = Watch {
            policies: vec!["nope".to_owned(), "high-risk-production".to_owned()],
            ..Watch::default()
        };
        assert!(by_policy.matches(&block).is_some());
        assert!(by_policy.matches(&allow).is_some());
        let both = Watch {
            subjects: vec!["CHG-1042".to_owned()],
            outcomes: vec![Outcome::Allow],
            ..Watch::default()
        };
        assert_eq!(both.matches(&block), None, "every filter must match");
        assert!(parse_outcome("maybe").is_err());
        assert_eq!(parse_outcome("Skipped"), Ok(Outcome::Skipped));
    }
}
