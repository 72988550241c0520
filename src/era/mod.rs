pub mod state;
pub mod mrtr;
