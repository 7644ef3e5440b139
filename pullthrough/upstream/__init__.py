"""Talking to a remote index: pages, project lists and file downloads over urllib3."""
