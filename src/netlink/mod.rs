//! The only code that touches sockets: ctnetlink dump, subscribe, delete, flush, and
//! ENOBUFS recovery. Each request names its conntrack(8) equivalent. It hands raw message
//! bytes to callers; decoding is `decode`'s job.

pub mod consts;
