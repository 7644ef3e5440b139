"""What the web layer asks for: resolved pages and files, with caching and single-flight."""
