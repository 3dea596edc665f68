"""What a person looks at: RGB previews and captioned mosaics of patches (:mod:`~ubf_core.reporting.preview`) and
the self-contained HTML report (:mod:`~ubf_core.reporting.html_report`). Each module is imported by name."""
