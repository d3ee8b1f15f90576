"""Our Dassl-compatible engine: upstream Dassl.pytorch 0.6.3's API, written fresh for PyTorch >= 2.6."""
__version__ = "0.6.3"
__author__ = "IP-CLIP contributors"
__homepage__ = "https://github.com/ip-clip/ip-clip"
