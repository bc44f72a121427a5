//! C2SP tlog-checkpoints (<https://c2sp.org/tlog-checkpoint>): a log's size and root hash
//! as the text of a signed note.
//!
//! The text is three or more lines, each ending in a newline:
//!
//! ```text
//! <origin>
//! <tree size in decimal>
//! <root hash in standard base64>
//! <extension line>...
//! ```
//!
//! Parsing is strict so that one checkpoint has one text: the origin is non-empty without
//! control characters, the size is ASCII decimal without sign or leading zeros (`0` for
//! the empty tree) and fits in 64 bits, the root hash is canonical padded base64 of
//! exactly 32 bytes, extension lines are non-empty without control characters, and the
//! text ends with a newline.
//!
//! The root is computed with the ledger's hash function; with SHA-256 it is the RFC 6962
//! root that other tlog tools expect. The origin names the log and the signature line
//! names the key: the spec says the key name SHOULD match the origin, and Vouch signs that
//! way, but neither [`Checkpoint::sign`] nor [`open_checkpoint`] requires it, so a log may
//! be cosigned by witnesses and rotate keys without changing its origin. A verifier that
//! wants the match checks [`VerifiedNote::is_verified_by`] with the origin as name.
#![deny(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::hash::Hash;
use crate::index::TreeSize;
use crate::note::{self, NoteError, SignError, Signer, VerifiedNote, Verifiers};

/// Length of the base64 text of a 32-byte root hash, padding included.
const ROOT_BASE64_LEN: usize = 44;
/// How much of an offending line an error message repeats.
const PREVIEW_CHARS: usize = 64;

/// A log's signed statement of its size and root hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, for example `example.com/log42`.
    pub origin: String,
    /// The number of entries the root covers.
    pub size: TreeSize,
    /// The Merkle tree root at `size`.
    pub root: Hash,
    /// Optional extension lines, each without its newline. The spec advises against them
    /// because monitors cannot audit them.
    pub extensions: Vec<String>,
}

/// Why a checkpoint text is invalid, naming the line (counted from 1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The text does not end with a newline.
    #[error("checkpoint does not end with a newline")]
    MissingFinalNewline,
    /// Fewer than three lines.
    #[error("checkpoint has {0} line(s); it needs at least 3: origin, tree size and root hash")]
    TooFewLines(usize),
    /// An empty line (line 1 is the origin).
    #[error("line {0} is empty")]
    EmptyLine(usize),
    /// A control character in the origin or an extension line.
    #[error("line {line}: control character U+{code:04X} at byte {at}")]
    ControlCharacter {
        /// The line number.
        line: usize,
        /// Byte offset in the line.
        at: usize,
        /// The character's code point.
        code: u32,
    },
    /// A tree size with something other than digits, or a leading zero.
    #[error("line 2: tree size {0:?} is not a decimal number without sign or leading zeros")]
    InvalidSize(String),
    /// A tree size of 2^64 or more.
    #[error("line 2: tree size {0} does not fit in 64 bits")]
    SizeOverflow(String),
    /// A root hash that is not canonical base64 of 32 bytes.
    #[error("line 3: root hash {0:?} is not canonical base64 of 32 bytes")]
    InvalidRoot(String),
}

/// Why a checkpoint could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignCheckpointError {
    /// The checkpoint's fields do not form a valid checkpoint text.
    #[error("cannot sign an invalid checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The signers were unusable.
    #[error(transparent)]
    Sign(#[from] SignError),
}

/// Why a signed checkpoint did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenCheckpointError {
    /// The note itself is malformed or not signed by a trusted key.
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The note verified, but its text is not a valid checkpoint.
    #[error("the signed note is not a valid checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
}

/// The start of a possibly long line, for error messages.
fn preview(line: &str) -> String {
    match line.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", line.get(..cut).unwrap_or_default()),
        None => line.to_owned(),
    }
}

/// Checks a free-text line: non-empty, no control characters.
fn check_free_line(line: &str, number: usize) -> Result<(), CheckpointError> {
    if line.is_empty() {
        return Err(CheckpointError::EmptyLine(number));
    }
    match line.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(CheckpointError::ControlCharacter {
            line: number,
            at,
            code: u32::from(c),
        }),
        None => Ok(()),
    }
}

fn parse_size(line: &str) -> Result<TreeSize, CheckpointError> {
    let digits_only = !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (line.len() > 1 && line.starts_with('0')) {
        return Err(CheckpointError::InvalidSize(preview(line)));
    }
    line.parse::<u64>()
        .map(TreeSize)
        .map_err(|_| CheckpointError::SizeOverflow(preview(line)))
}

fn parse_root(line: &str) -> Result<Hash, CheckpointError> {
    let invalid = || CheckpointError::InvalidRoot(preview(line));
    if line.len() != ROOT_BASE64_LEN {
        return Err(invalid());
    }
    let bytes = BASE64.decode(line).map_err(|_| invalid())?;
    Hash::from_slice(&bytes).map_err(|_| invalid())
}

fn encode_root(root: &Hash) -> String {
    BASE64.encode(root.as_bytes())
}

impl Checkpoint {
    /// A checkpoint without extension lines.
    pub fn new(origin: impl Into<String>, size: TreeSize, root: Hash) -> Self {
        Self {
            origin: origin.into(),
            size,
            root,
            extensions: Vec::new(),
        }
    }

    /// Checks that the fields form a valid checkpoint text.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] if the origin or an extension line is empty or holds a control
    /// character (a newline included).
    pub fn validate(&self) -> Result<(), CheckpointError> {
        check_free_line(&self.origin, 1)?;
        for (line, extension) in (4..).zip(&self.extensions) {
            check_free_line(extension, line)?;
        }
        Ok(())
    }

    /// The checkpoint text: the note text that gets signed.
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] if the fields do not form a valid checkpoint (see
    /// [`Checkpoint::validate`]).
    pub fn encode(&self) -> Result<String, CheckpointError> {
        self.validate()?;
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size.get(),
            encode_root(&self.root)
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        Ok(text)
    }

    /// Parses a checkpoint text strictly (see the module documentation).
    ///
    /// # Errors
    ///
    /// [`CheckpointError`] naming the first bad line.
    pub fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let mut lines = body.split('\n');
        let origin = lines.next().unwrap_or_default();
        check_free_line(origin, 1)?;
        let size = lines.next().ok_or(CheckpointError::TooFewLines(1))?;
        let size = parse_size(size)?;
        let root = lines.next().ok_or(CheckpointError::TooFewLines(2))?;
        let root = parse_root(root)?;
        let mut extensions = Vec::new();
        for (number, line) in (4..).zip(lines) {
            check_free_line(line, number)?;
            extensions.push(line.to_owned());
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// The checkpoint as a signed note, with one signature line per signer.
    ///
    /// # Errors
    ///
    /// [`SignCheckpointError::Checkpoint`] if the fields are invalid,
    /// [`SignCheckpointError::Sign`] if the signers are unusable (none, duplicates, too
    /// many).
    pub fn sign(&self, signers: &[&Signer]) -> Result<Vec<u8>, SignCheckpointError> {
        let text = self.encode()?;
        Ok(note::sign_note(&text, signers)?)
    }
}

/// Opens a signed checkpoint: verifies the note against `known`, then parses its text.
///
/// The text is parsed only after a trusted signature verified it, as the signed-note spec
/// requires. The origin is not compared with the key names; see the module
/// documentation.
///
/// # Errors
///
/// [`OpenCheckpointError::Note`] if the note does not open,
/// [`OpenCheckpointError::Checkpoint`] if its text is not a valid checkpoint.
pub fn open_checkpoint(
    note: &[u8],
    known: &Verifiers,
) -> Result<(Checkpoint, VerifiedNote), OpenCheckpointError> {
    let verified = note::open(note, known)?;
    let checkpoint = Checkpoint::parse(verified.text())?;
    Ok((checkpoint, verified))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hash::{HASH_LEN, HashAlg};

    const SPEC_EXAMPLE: &str =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";

    fn sample() -> Checkpoint {
        Checkpoint::new(
            "example.com/log",
            TreeSize(3),
            HashAlg::Sha256.leaf_hash(b"x"),
        )
    }

    #[test]
    fn parses_the_spec_example() {
        let cp = Checkpoint::parse(SPEC_EXAMPLE).unwrap();
        assert_eq!(cp.origin, "example.com/behind-the-sofa");
        assert_eq!(cp.size, TreeSize(20_852_163));
        assert_eq!(
            cp.root.to_hex(),
            "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62"
        );
        assert!(cp.extensions.is_empty());
        assert_eq!(cp.encode().unwrap(), SPEC_EXAMPLE);
    }

    #[test]
    fn extensions_round_trip() {
        let mut cp = sample();
        cp.extensions = vec!["ext one".into(), "— two".into()];
        let text = cp.encode().unwrap();
        assert!(text.ends_with("\next one\n— two\n"));
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
    }

    #[test]
    fn empty_tree_and_largest_size() {
        let mut cp = sample();
        cp.size = TreeSize(0);
        cp.root = HashAlg::Sha256.empty_root();
        let text = cp.encode().unwrap();
        assert_eq!(
            text,
            "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
        cp.size = TreeSize(u64::MAX);
        assert_eq!(Checkpoint::parse(&cp.encode().unwrap()).unwrap(), cp);
    }

    fn with_line(n: usize, replacement: &str) -> String {
        let mut lines: Vec<&str> = SPEC_EXAMPLE.lines().collect();
        lines[n - 1] = replacement;
        format!("{}\n", lines.join("\n"))
    }

    #[test]
    fn each_rule_is_enforced() {
        use CheckpointError as E;
        let root_line = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
        let cases: Vec<(String, CheckpointError)> = vec![
            (SPEC_EXAMPLE.trim_end().to_owned(), E::MissingFinalNewline),
            (String::new(), E::MissingFinalNewline),
            ("\n".into(), E::EmptyLine(1)),
            ("origin\n".into(), E::TooFewLines(1)),
            ("origin\n5\n".into(), E::TooFewLines(2)),
            (with_line(1, ""), E::EmptyLine(1)),
            (
                with_line(1, "a\tb"),
                E::ControlCharacter {
                    line: 1,
                    at: 1,
                    code: 9,
                },
            ),
            (
                with_line(1, "a\u{7f}"),
                E::ControlCharacter {
                    line: 1,
                    at: 1,
                    code: 0x7f,
                },
            ),
            (with_line(2, ""), E::InvalidSize(String::new())),
            (with_line(2, "007"), E::InvalidSize("007".into())),
            (with_line(2, "00"), E::InvalidSize("00".into())),
            (with_line(2, "+7"), E::InvalidSize("+7".into())),
            (with_line(2, "-7"), E::InvalidSize("-7".into())),
            (with_line(2, " 7"), E::InvalidSize(" 7".into())),
            (with_line(2, "7 "), E::InvalidSize("7 ".into())),
            (with_line(2, "0x10"), E::InvalidSize("0x10".into())),
            (with_line(2, "１"), E::InvalidSize("１".into())),
            (
                with_line(2, "18446744073709551616"),
                E::SizeOverflow("18446744073709551616".into()),
            ),
            (with_line(3, ""), E::InvalidRoot(String::new())),
            // Unpadded, URL-safe alphabet, non-zero padding bits, wrong length, hex.
            (
                with_line(3, root_line.trim_end_matches('=')),
                E::InvalidRoot(root_line.trim_end_matches('=').into()),
            ),
            (
                with_line(3, &root_line.replace('/', "_")),
                E::InvalidRoot(root_line.replace('/', "_")),
            ),
            (
                with_line(3, "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J="),
                E::InvalidRoot("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2J=".into()),
            ),
            (
                with_line(3, "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw=="),
                E::InvalidRoot("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxqw==".into()),
            ),
            (
                with_line(
                    3,
                    "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62",
                ),
                E::InvalidRoot(
                    "0ac5186a91863e8e1d90c808014aa89bf5da8e3ee1d9f07630f0378f68f1ab62".into(),
                ),
            ),
            (format!("{SPEC_EXAMPLE}\n"), E::EmptyLine(4)),
            (format!("{SPEC_EXAMPLE}ext\n\n"), E::EmptyLine(5)),
            (
                format!("{SPEC_EXAMPLE}ok\nbad\r\n"),
                E::ControlCharacter {
                    line: 5,
                    at: 3,
                    code: 13,
                },
            ),
        ];
        for (text, err) in cases {
            assert_eq!(Checkpoint::parse(&text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_line_and_stay_short() {
        let err = Checkpoint::parse(&with_line(2, "007")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "line 2: tree size \"007\" is not a decimal number without sign or leading zeros"
        );
        let long = "9".repeat(10_000);
        let err = Checkpoint::parse(&with_line(2, &long)).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
    }

    #[test]
    fn encode_refuses_what_parse_would_refuse() {
        let mut cp = sample();
        cp.origin = "two\nlines".into();
        assert_eq!(
            cp.encode(),
            Err(CheckpointError::ControlCharacter {
                line: 1,
                at: 3,
                code: 10
            })
        );
        cp.origin = String::new();
        assert_eq!(cp.encode(), Err(CheckpointError::EmptyLine(1)));
        let mut cp = sample();
        cp.extensions = vec!["fine".into(), String::new()];
        assert_eq!(cp.encode(), Err(CheckpointError::EmptyLine(5)));
        assert_eq!(
            cp.sign(&[&Signer::from_seed("k", &[1; 32]).unwrap()]),
            Err(SignCheckpointError::Checkpoint(CheckpointError::EmptyLine(
                5
            )))
        );
    }

    #[test]
    fn sign_and_open() {
        let key = Signer::from_seed("example.com/log", &[7; 32]).unwrap();
        let witness = Signer::from_seed("witness.example", &[8; 32]).unwrap();
        let cp = sample();
        let note = cp.sign(&[&key, &witness]).unwrap();
        let known: Verifiers = [key.verifier()].into_iter().collect();
        let (opened, verified) = open_checkpoint(&note, &known).unwrap();
        assert_eq!(opened, cp);
        assert!(verified.is_verified_by(&cp.origin, key.key_id()));
        assert_eq!(verified.unverified().len(), 1);

        let stranger: Verifiers = [witness.verifier()].into_iter().collect();
        let (_, verified) = open_checkpoint(&note, &stranger).unwrap();
        assert!(!verified.is_verified_by(&cp.origin, key.key_id()));

        let nobody: Verifiers = [Signer::from_seed("other", &[9; 32]).unwrap().verifier()]
            .into_iter()
            .collect();
        assert!(matches!(
            open_checkpoint(&note, &nobody),
            Err(OpenCheckpointError::Note(NoteError::UnverifiedNote { .. }))
        ));

        assert_eq!(
            cp.sign(&[]),
            Err(SignCheckpointError::Sign(SignError::NoSigners))
        );
    }

    #[test]
    fn a_signed_note_that_is_not_a_checkpoint() {
        let key = Signer::from_seed("k", &[7; 32]).unwrap();
        let note = note::sign_note("hello\n", &[&key]).unwrap();
        let known: Verifiers = [key.verifier()].into_iter().collect();
        assert_eq!(
            open_checkpoint(&note, &known),
            Err(OpenCheckpointError::Checkpoint(
                CheckpointError::TooFewLines(1)
            ))
        );
    }

    fn arb_checkpoint() -> impl Strategy<Value = Checkpoint> {
        (
            "[^\\p{Cc}]{1,40}",
            any::<u64>(),
            any::<[u8; 32]>(),
            proptest::collection::vec("[^\\p{Cc}]{1,20}", 0..3),
        )
            .prop_map(|(origin, size, root, extensions)| Checkpoint {
                origin,
                size: TreeSize(size),
                root: Hash(root),
                extensions,
            })
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(cp in arb_checkpoint()) {
            let text = cp.encode().unwrap();
            prop_assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
        }

        #[test]
        fn parse_is_canonical(text in "[0-9A-Za-z+/=\n .-]{0,80}") {
            if let Ok(cp) = Checkpoint::parse(&text) {
                prop_assert_eq!(cp.encode().unwrap(), text);
            }
        }

        #[test]
        fn parse_never_panics(text in any::<String>()) {
            let _ = Checkpoint::parse(&text);
        }
    }

    #[test]
    fn root_base64_length_constant() {
        assert_eq!(encode_root(&Hash([0xff; HASH_LEN])).len(), ROOT_BASE64_LEN);
    }
}
