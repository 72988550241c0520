pub mod mrtr;
pub mod state;
