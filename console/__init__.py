"""gatewatch's console (Textual) and command line. May import `proxy`; never the other way round."""
