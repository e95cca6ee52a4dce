//! Character-level text: a vocabulary of the sorted distinct characters, the corpus split
//! into its first 90% for training and last 10% for validation, and token streams resident
//! on the device for the GPU to draw blocks from.

use std::path::Path;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Tensor};

/// The characters a model reads and writes; token `i` is the `i`-th in sorted order.
///
/// ```
/// use wgtrain::data::Vocabulary;
/// let vocabulary = Vocabulary::of("hello world");
/// assert_eq!(vocabulary.chars(), " dehlorw");
/// let tokens = vocabulary.encode("hello")?;
/// assert_eq!(vocabulary.decode(&tokens)?, "hello");
/// assert!(vocabulary.encode("hi").is_err()); // 'i' is not in it
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    chars: Vec<char>,
}

impl Vocabulary {
    /// The sorted distinct characters of `text`.
    pub fn of(text: &str) -> Self {
        let mut chars: Vec<char> = text.chars().collect();
        chars.sort_unstable();
        chars.dedup();
        Self { chars }
    }

    /// A vocabulary kept as its characters in token order (as a checkpoint stores it).
    pub fn from_chars(chars: &str) -> Result<Self> {
        let vocab = Self::of(chars);
        if vocab.chars.iter().collect::<String>() != chars {
            return Err(Error::InvalidArgument(
                "a vocabulary's characters must be sorted and distinct".into(),
            ));
        }
        Ok(vocab)
    }

    /// Tokens in the vocabulary.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether the vocabulary has no tokens.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The characters in token order.
    pub fn chars(&self) -> String {
        self.chars.iter().collect()
    }

    /// Tokens of `text`; a character outside the vocabulary is an error naming it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        text.chars()
            .enumerate()
            .map(|(at, c)| {
                self.chars
                    .binary_search(&c)
                    .map(|i| i as u32)
                    .map_err(|_| {
                        Error::InvalidArgument(format!(
                            "character {c:?} at position {at} is not in the model's vocabulary of {} characters",
                            self.len()
                        ))
                    })
            })
            .collect()
    }

    /// The text of `tokens`; a token past the vocabulary is an error.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        tokens
            .iter()
            .map(|&t| {
                self.chars.get(t as usize).copied().ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "token {t} is past the vocabulary of {} characters",
                        self.len()
                    ))
                })
            })
            .collect()
    }
}

/// A corpus tokenised by its own vocabulary and split for training and validation.
#[derive(Clone, Debug)]
pub struct TextCorpus {
    /// Its distinct characters, sorted: token `i` is the `i`-th.
    pub vocabulary: Vocabulary,
    /// The first 90% of the text as tokens.
    pub train: Vec<u32>,
    /// The last 10%, held out.
    pub val: Vec<u32>,
}

impl TextCorpus {
    /// The first 90% of `text`'s characters for training, the rest for validation.
    pub fn new(text: &str) -> Result<Self> {
        let vocabulary = Vocabulary::of(text);
        let mut train = vocabulary.encode(text)?;
        let val = train.split_off(train.len() * 9 / 10);
        Ok(Self {
            vocabulary,
            train,
            val,
        })
    }

    /// Reads a UTF-8 text file (`data/shakespeare/input.txt`).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = crate::files::read_regular(path)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| Error::invalid_data(path, "text", format!("not UTF-8: {e}")))?;
        Self::new(&text)
    }
}

/// A token stream uploaded once; the trainer draws its batches' blocks on the GPU.
#[derive(Debug)]
pub struct DeviceTokens {
    /// Unique per upload, among datasets too: compiled samplers are cached under it.
    pub(crate) id: usize,
    pub(crate) tokens: Tensor,
    /// Every token id is below this.
    pub vocab_size: usize,
}

impl DeviceTokens {
    /// Uploads `tokens` of a `vocab_size`-token vocabulary, refusing ids past it.
    pub fn upload(gpu: &Gpu, tokens: &[u32], vocab_size: usize) -> Result<Self> {
        if let Some(at) = tokens.iter().position(|&t| t as usize >= vocab_size) {
            return Err(Error::InvalidArgument(format!(
                "token {} at position {at} is past the vocabulary of {vocab_size}",
                tokens[at]
            )));
        }
        if tokens.is_empty() {
            return Err(Error::InvalidArgument("an empty token stream".into()));
        }
        Ok(Self {
            id: super::device::next_id(),
            tokens: gpu.tensor_u32(tokens, &[tokens.len()])?,
            vocab_size,
        })
    }

    /// Tokens in the stream.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the stream is empty (never true of an uploaded one).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}
