//! Run cards: a [`RunState`] folded from the worker's events, rendered into
//! Card JSON 2.0 (feishu.md §4) that always fits the platform's limits.
//!
//! - [`state`]: `RunState::apply(&WorkerEvent)`, pure and replayable;
//! - [`render`]: the card, degraded step by step (shorter output tails,
//!   less reasoning, more tools folded) until it fits the byte and element
//!   budgets; the answer is the one thing never shortened: it is split into
//!   fixed-size pieces instead, and a card reports when its piece is not the
//!   last so the caller can open a continuation card;
//! - [`text`]: UTF-16 lengths, JSON-escaped sizes, truncation with a
//!   visible marker, and [`split_answer`];
//! - [`command_card`] / [`command_markdown`] / [`command_text`]: a command
//!   reply in each reply mode (buttons and the `/config` form on cards);
//! - [`run_text`] / [`markdown_to_plain`]: a run's final state as plain
//!   text for reply mode "text".
//!
//! Nothing here does I/O; CardKit calls live in `feishu::cardkit`.

mod card;
mod command;
mod note_form;
mod plain;
pub(crate) mod state;
pub(crate) mod text;
mod thread_elements;

#[cfg(test)]
mod command_tests;
#[cfg(test)]
mod display_tests;
#[cfg(test)]
mod tests;

pub(crate) use card::{render, summary};
#[cfg(test)]
use command::{RenderedCommandCard, command_text};
pub(crate) use command::{command_card, command_markdown};
pub(crate) use plain::{markdown_to_plain, run_markdown, run_text};
#[cfg(test)]
use state::{Phase, ReplyMode};
pub(crate) use state::{RunState, ToolDisplay};
pub(crate) use text::{split_answer, split_pieces};

/// What the platform accepts is 30 KB of card JSON (200860 / 230025); the
/// margin covers differences in how the platform counts.
pub(crate) const CARD_BUDGET_BYTES: usize = 28 * 1024;
/// Components per card (card-json-v2-structure).
pub(crate) const MAX_ELEMENTS: usize = 200;
/// Bytes of (JSON-escaped) answer text per card. Fixed, so the split of the
/// answer does not depend on how much else the card shows.
pub(crate) const ANSWER_BUDGET_BYTES: usize = 16 * 1024;
/// Room always left for everything but the answer.
const MIN_CHROME_BYTES: usize = 4 * 1024;

/// The streamed markdown element; CardKit content updates target it.
pub(crate) const ANSWER_ELEMENT_ID: &str = "answer";
/// The stop button.
pub(crate) const STOP_ELEMENT_ID: &str = "stop";
/// Key of the signed token inside the button's callback `value` object.
pub(crate) const CALLBACK_VALUE_KEY: &str = "fcx";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderMode {
    /// The run's card: header, reasoning, tools, first answer piece,
    /// files, footer, stop button.
    Main,
    /// A card that carries answer piece `piece` (≥ 1) when the answer
    /// outgrew the main card.
    Continuation { piece: usize },
}

#[derive(Debug, Clone)]
pub(crate) struct RenderOptions {
    /// Whole card JSON, bytes.
    pub(crate) budget_bytes: usize,
    /// Answer piece size, bytes of JSON-escaped text; clamped so the rest of
    /// the card always has room.
    pub(crate) answer_budget_bytes: usize,
    pub(crate) max_elements: usize,
    /// Tool panels shown before older calls fold into one panel.
    pub(crate) max_tool_panels: usize,
    /// Reasoning shown, UTF-16 units (the tail).
    pub(crate) reasoning_chars: usize,
    /// Output tail shown per tool, UTF-16 units.
    pub(crate) tool_output_chars: usize,
    /// Header title prefix, e.g. "Codex".
    pub(crate) title: String,
    /// The signed callback token for the stop button; `None` = no button.
    pub(crate) stop_token: Option<String>,
    /// Wall clock for the live elapsed time (ms since the epoch).
    pub(crate) now_ms: Option<i64>,
    pub(crate) mode: RenderMode,
    /// How tool calls appear (`RunState::tool_display` carries the scope's
    /// choice).
    pub(crate) tool_display: ToolDisplay,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            budget_bytes: CARD_BUDGET_BYTES,
            answer_budget_bytes: ANSWER_BUDGET_BYTES,
            max_elements: MAX_ELEMENTS,
            max_tool_panels: 6,
            reasoning_chars: 3_000,
            tool_output_chars: 1_500,
            title: "Codex".to_string(),
            stop_token: None,
            now_ms: None,
            mode: RenderMode::Main,
            tool_display: ToolDisplay::Full,
        }
    }
}

impl RenderOptions {
    /// The answer piece budget actually used.
    pub(crate) fn effective_answer_budget(&self) -> usize {
        self.answer_budget_bytes
            .min(self.budget_bytes.saturating_sub(MIN_CHROME_BYTES))
            .max(text::MIN_PIECE_BUDGET)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct RenderedCard {
    /// Card JSON 2.0.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) card: serde_json::Value,
    /// `card` serialized: the string CardKit's `data` carries.
    pub(crate) json: String,
    /// `json.len()`.
    pub(crate) bytes: usize,
    /// Components, nested ones included.
    pub(crate) elements: usize,
    /// Exact content of the [`ANSWER_ELEMENT_ID`] element, for content
    /// updates.
    pub(crate) answer: String,
    /// Which answer piece this card shows.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) piece: usize,
    /// How many pieces the answer has now. `pieces > piece + 1` means the
    /// answer continues in a continuation card (see [`Self::overflows`]).
    pub(crate) pieces: usize,
    /// `config.streaming_mode` of this card.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) streaming: bool,
    /// 0 = everything shown; higher = more detail dropped to fit.
    #[cfg_attr(not(test), allow(dead_code))] // read by the tests
    pub(crate) degrade_level: u8,
    /// False only if even the barest card exceeded a budget (cannot happen
    /// with sane options; reported rather than panicking).
    pub(crate) fits: bool,
}

impl RenderedCard {
    /// The answer goes on past this card: the caller should freeze this
    /// card's answer and continue with `RenderMode::Continuation { piece:
    /// piece + 1 }`.
    #[cfg(test)]
    pub(crate) fn overflows(&self) -> bool {
        self.pieces.saturating_sub(1) > self.piece
    }
}
