//! Hostile input and faults (issue 13): each test here failed on the code
//! before its fix. Requests that must be refused get a 4xx with a reason;
//! nothing a client sends may panic a handler or leak a permit.

use crate::support::app::{parse_exposition, start_app, value};
use crate::support::httpd::TestServer;

