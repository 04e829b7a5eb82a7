//! Quiet hours (work in progress on this branch).
