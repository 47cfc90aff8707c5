//! Ordering candidates from their scores: normalization and fusion of several signals,
//! hybrid weighting (with weights fit by coordinate ascent), calibration of scores into
//! probabilities, and pairwise (duo) preference aggregation.

pub mod calibration;
pub mod coordinate_ascent;
pub mod fusion;
pub mod hybrid;
pub mod normalize;
pub mod pairwise;
pub mod signals;
pub mod weights;
