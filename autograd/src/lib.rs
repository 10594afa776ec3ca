//! deltaw-autograd (being written).
