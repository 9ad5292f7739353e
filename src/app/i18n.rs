//! Labels: Chinese first, with an English switch held in a context signal.

use dioxus::prelude::*;

use crate::domain::codes::Coded;
pub use crate::domain::codes::Lang;

/// The label language of this app instance (a signal, so switching re-renders every screen).
pub fn use_lang() -> Signal<Lang> {
    use_context::<Signal<Lang>>()
}

/// Picks the Chinese or English text.
pub fn t(lang: Lang, zh: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Zh => zh,
        Lang::En => en,
    }
}

/// The label of a code in the current language.
pub fn label<T: Coded>(lang: Lang, v: T) -> &'static str {
    v.label(lang)
}
