//! Communication between environments, built on shared pages and PCT:
//! shared memory regions ([`shm`]), pipes ([`pipe`]) and lightweight
//! remote procedure calls ([`lrpc`]).

pub mod lrpc;
pub mod pipe;
pub mod shm;
