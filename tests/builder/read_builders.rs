//! `inspect` and `verify` on builders: a hand-made builder-shaped layout, sound and flawed.
