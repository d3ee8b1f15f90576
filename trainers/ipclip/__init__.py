"""IP-CLIP: prompt-based IP protection of CLIP (CVPR 2025).

The components live in their own modules (feature_hooks, ip_projector, style_bank, style_branch,
loss); this package file stays import-free so that importing `trainers.ipclip` costs nothing.
"""
