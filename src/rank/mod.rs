//! Ordering candidates from their scores: normalization and fusion of several signals,
//! hybrid weighting (with weights fit by coordinate ascent), calibration of scores into
//! probabilities, pairwise (duo) preference aggregation, and the re-rankers built on
//! them: scorers (`scorer`), cascades (`multistage`), `hybrid` and `pairwise`.

pub mod calibration;
pub mod coordinate_ascent;
pub mod fusion;
pub mod hybrid;
pub mod multistage;
pub mod normalize;
pub mod pairwise;
pub mod scorer;
pub mod signals;
pub mod weights;
