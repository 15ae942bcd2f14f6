"""Campaign files: the model, loading YAML with PATH:LINE:COL errors, the checks that need the file system or the
store, the JSON Schema for editors, templates (files, sandboxed rendering, locale-aware filters,
translations), and the campaign folder as the long-running processes see it.

May import: outreach.core, outreach.channels, outreach.store, outreach.customers, outreach.segments.
"""
