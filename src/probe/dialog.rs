//! The expect/send/STARTTLS line dialogue shared by tcp and unix (placeholder).
