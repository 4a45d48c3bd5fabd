include!("../../build/static-link.rs");
