//! Networking shared by the probers and the bridge, below both: TLS client
//! configs that capture the presented chain (`tls`), and the rustls adapter
//! tokio-postgres needs (`postgres`). Imports nothing above `config`.

pub mod postgres;
pub mod tls;
