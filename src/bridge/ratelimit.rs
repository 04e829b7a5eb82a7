//! Rate limits (work in progress on this branch).
