//! `corelog tune`: the disk and system probe that writes tuning profiles.
//!
//! Empty until the operations issue (#7) builds it; the crate exists now so the workspace
//! has the shape the design card gives.
