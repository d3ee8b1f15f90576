"""Default configuration: every key of upstream Dassl 0.6.3 with its default, plus our extensions.

`get_cfg_default()` returns a fresh clone, so callers may mutate it freely.
"""
from yacs.config import CfgNode as CN

_C = CN()
_C.VERSION = 1
_C.OUTPUT_DIR = './output'
_C.RESUME = ''
_C.SEED = -1
_C.USE_CUDA = True
_C.VERBOSE = True
_C.INPUT = CN()
_C.INPUT.SIZE = (224, 224)
_C.INPUT.INTERPOLATION = 'bilinear'
_C.INPUT.TRANSFORMS = ()
_C.INPUT.NO_TRANSFORM = False
_C.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
_C.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
_C.INPUT.CROP_PADDING = 4
_C.INPUT.RRCROP_SCALE = (0.08, 1.0)
_C.INPUT.CUTOUT_N = 1
_C.INPUT.CUTOUT_LEN = 16
_C.INPUT.GN_MEAN = 0.0
_C.INPUT.GN_STD = 0.15
_C.INPUT.RANDAUGMENT_N = 2
_C.INPUT.RANDAUGMENT_M = 10
_C.INPUT.COLORJITTER_B = 0.4
_C.INPUT.COLORJITTER_C = 0.4
_C.INPUT.COLORJITTER_S = 0.4
_C.INPUT.COLORJITTER_H = 0.1
_C.INPUT.RGS_P = 0.2
_C.INPUT.GB_P = 0.5
_C.INPUT.GB_K = 21
_C.DATASET = CN()
_C.DATASET.ROOT = ''
_C.DATASET.NAME = ''
_C.DATASET.SOURCE_DOMAINS = ()
_C.DATASET.TARGET_DOMAINS = ()
_C.DATASET.NUM_LABELED = -1
_C.DATASET.NUM_SHOTS = -1
_C.DATASET.VAL_PERCENT = 0.1
_C.DATASET.STL10_FOLD = -1
_C.DATASET.CIFAR_C_TYPE = ''
_C.DATASET.CIFAR_C_LEVEL = 1
_C.DATASET.ALL_AS_UNLABELED = False
_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
_C.DATALOADER.K_TRANSFORMS = 1
_C.DATALOADER.RETURN_IMG0 = False
_C.DATALOADER.TRAIN_X = CN()
_C.DATALOADER.TRAIN_X.SAMPLER = 'RandomSampler'
_C.DATALOADER.TRAIN_X.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_X.N_DOMAIN = 0
_C.DATALOADER.TRAIN_X.N_INS = 16
_C.DATALOADER.TRAIN_U = CN()
_C.DATALOADER.TRAIN_U.SAME_AS_X = True
_C.DATALOADER.TRAIN_U.SAMPLER = 'RandomSampler'
_C.DATALOADER.TRAIN_U.BATCH_SIZE = 32
_C.DATALOADER.TRAIN_U.N_DOMAIN = 0
_C.DATALOADER.TRAIN_U.N_INS = 16
_C.DATALOADER.TEST = CN()
_C.DATALOADER.TEST.SAMPLER = 'SequentialSampler'
_C.DATALOADER.TEST.BATCH_SIZE = 32
_C.MODEL = CN()
_C.MODEL.INIT_WEIGHTS = ''
_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = ''
_C.MODEL.BACKBONE.PRETRAINED = True
_C.MODEL.HEAD = CN()
_C.MODEL.HEAD.NAME = ''
_C.MODEL.HEAD.HIDDEN_LAYERS = ()
_C.MODEL.HEAD.ACTIVATION = 'relu'
_C.MODEL.HEAD.BN = True
_C.MODEL.HEAD.DROPOUT = 0.0
_C.OPTIM = CN()
_C.OPTIM.NAME = 'adam'
_C.OPTIM.LR = 0.0003
_C.OPTIM.WEIGHT_DECAY = 0.0005
_C.OPTIM.MOMENTUM = 0.9
_C.OPTIM.SGD_DAMPNING = 0
_C.OPTIM.SGD_NESTEROV = False
_C.OPTIM.RMSPROP_ALPHA = 0.99
_C.OPTIM.ADAM_BETA1 = 0.9
_C.OPTIM.ADAM_BETA2 = 0.999
_C.OPTIM.STAGED_LR = False
_C.OPTIM.NEW_LAYERS = ()
_C.OPTIM.BASE_LR_MULT = 0.1
_C.OPTIM.LR_SCHEDULER = 'single_step'
_C.OPTIM.STEPSIZE = (-1,)
_C.OPTIM.GAMMA = 0.1
_C.OPTIM.MAX_EPOCH = 10
_C.OPTIM.WARMUP_EPOCH = -1
_C.OPTIM.WARMUP_TYPE = 'linear'
_C.OPTIM.WARMUP_CONS_LR = 1e-05
_C.OPTIM.WARMUP_MIN_LR = 1e-05
_C.OPTIM.WARMUP_RECOUNT = True
_C.TRAIN = CN()
_C.TRAIN.CHECKPOINT_FREQ = 0
_C.TRAIN.PRINT_FREQ = 10
_C.TRAIN.COUNT_ITER = 'train_x'
_C.TEST = CN()
_C.TEST.EVALUATOR = 'Classification'
_C.TEST.PER_CLASS_RESULT = False
_C.TEST.COMPUTE_CMAT = False
_C.TEST.NO_TEST = False
_C.TEST.SPLIT = 'test'
_C.TEST.FINAL_MODEL = 'last_step'
_C.TRAINER = CN()
_C.TRAINER.NAME = ''
_C.TRAINER.MCD = CN()
_C.TRAINER.MCD.N_STEP_F = 4
_C.TRAINER.MME = CN()
_C.TRAINER.MME.LMDA = 0.1
_C.TRAINER.CDAC = CN()
_C.TRAINER.CDAC.CLASS_LR_MULTI = 10
_C.TRAINER.CDAC.RAMPUP_COEF = 30
_C.TRAINER.CDAC.RAMPUP_ITRS = 1000
_C.TRAINER.CDAC.TOPK_MATCH = 5
_C.TRAINER.CDAC.P_THRESH = 0.95
_C.TRAINER.CDAC.STRONG_TRANSFORMS = ()
_C.TRAINER.SE = CN()
_C.TRAINER.SE.EMA_ALPHA = 0.999
_C.TRAINER.SE.CONF_THRE = 0.95
_C.TRAINER.SE.RAMPUP = 300
_C.TRAINER.M3SDA = CN()
_C.TRAINER.M3SDA.LMDA = 0.5
_C.TRAINER.M3SDA.N_STEP_F = 4
_C.TRAINER.DAEL = CN()
_C.TRAINER.DAEL.WEIGHT_U = 0.5
_C.TRAINER.DAEL.CONF_THRE = 0.95
_C.TRAINER.DAEL.STRONG_TRANSFORMS = ()
_C.TRAINER.CROSSGRAD = CN()
_C.TRAINER.CROSSGRAD.EPS_F = 1.0
_C.TRAINER.CROSSGRAD.EPS_D = 1.0
_C.TRAINER.CROSSGRAD.ALPHA_F = 0.5
_C.TRAINER.CROSSGRAD.ALPHA_D = 0.5
_C.TRAINER.DDAIG = CN()
_C.TRAINER.DDAIG.G_ARCH = ''
_C.TRAINER.DDAIG.LMDA = 0.3
_C.TRAINER.DDAIG.CLAMP = False
_C.TRAINER.DDAIG.CLAMP_MIN = -1.0
_C.TRAINER.DDAIG.CLAMP_MAX = 1.0
_C.TRAINER.DDAIG.WARMUP = 0
_C.TRAINER.DDAIG.ALPHA = 0.5
_C.TRAINER.DAELDG = CN()
_C.TRAINER.DAELDG.WEIGHT_U = 0.5
_C.TRAINER.DAELDG.CONF_THRE = 0.95
_C.TRAINER.DAELDG.STRONG_TRANSFORMS = ()
_C.TRAINER.DOMAINMIX = CN()
_C.TRAINER.DOMAINMIX.TYPE = 'crossdomain'
_C.TRAINER.DOMAINMIX.ALPHA = 1.0
_C.TRAINER.DOMAINMIX.BETA = 1.0
_C.TRAINER.ENTMIN = CN()
_C.TRAINER.ENTMIN.LMDA = 0.001
_C.TRAINER.MEANTEACHER = CN()
_C.TRAINER.MEANTEACHER.WEIGHT_U = 1.0
_C.TRAINER.MEANTEACHER.EMA_ALPHA = 0.999
_C.TRAINER.MEANTEACHER.RAMPUP = 5
_C.TRAINER.MIXMATCH = CN()
_C.TRAINER.MIXMATCH.WEIGHT_U = 100.0
_C.TRAINER.MIXMATCH.TEMP = 2.0
_C.TRAINER.MIXMATCH.MIXUP_BETA = 0.75
_C.TRAINER.MIXMATCH.RAMPUP = 20000
_C.TRAINER.FIXMATCH = CN()
_C.TRAINER.FIXMATCH.WEIGHT_U = 1.0
_C.TRAINER.FIXMATCH.CONF_THRE = 0.95
_C.TRAINER.FIXMATCH.STRONG_TRANSFORMS = ()

# ---------------------------------------------------------------------------------------------
# Engine extensions (not in upstream 0.6.3). Documented in the README's config table.
# ---------------------------------------------------------------------------------------------
# Name of the trainer config that ran (train.py fills it from the --config-file stem); groups runs.
_C.CONFIG_NAME = ""
# Seed of the train/test split; independent of SEED so that every training seed sees the same split.
_C.DATASET.SPLIT_SEED = 0
# Folder of split files <domain>_{train,test}.txt ("relative/path label" per line). Empty: the
# dataset's own splits/seed<SPLIT_SEED> folder, created on first use and never rewritten.
_C.DATASET.SPLIT_DIR = ""
# Fraction of every class held out for test when a split is created.
_C.DATASET.TEST_FRACTION = 0.2
# Class-stratified caps per domain applied when a split is created (-1: no cap).
_C.DATASET.MAX_TRAIN_PER_DOMAIN = -1
_C.DATASET.MAX_TEST_PER_DOMAIN = -1
# Named test sets, items "NAME=SELECTOR[+PRE...]" (see docs/design.md). Empty: upstream's single "test".
_C.DATASET.TEST_SETS = ()
# Evaluate every named test set every N epochs (0: only after training), for accuracy curves.
_C.TEST.EVAL_FREQ = 0

# ---------------------------------------------------------------------------------------------
# Scenario image transforms: PIL -> PIL pre-transforms of the IP-CLIP scenarios (registered in
# dassl.data.transforms.PRE_TRANSFORM_REGISTRY), applied at the original resolution.
# ---------------------------------------------------------------------------------------------
# "watermark": a fixed pattern painted over the image. PATTERN: grid (every PERIOD-th row and column;
# period 2 = the release's dense grid, 75 % of the pixels) or stripes (every PERIOD-th row).
_C.INPUT.WATERMARK = CN()
_C.INPUT.WATERMARK.PATTERN = "grid"
_C.INPUT.WATERMARK.PERIOD = 2
_C.INPUT.WATERMARK.COLOR = (255, 255, 255)
# Opacity in (0, 1]: 1 paints COLOR (the release); lower blends it over the pixels (a fainter mark).
_C.INPUT.WATERMARK.ALPHA = 1.0
# "strong_style": NUM_OPS ops of a fixed list of 10 in random order, each with probability PROB at a
# strength drawn up to MAX_MAGNITUDE (in [0, 1]), then a CUTOUT_SIZE px square of CUTOUT_FILL.
_C.INPUT.STRONG_STYLE = CN()
_C.INPUT.STRONG_STYLE.NUM_OPS = 10
_C.INPUT.STRONG_STYLE.PROB = 0.5
_C.INPUT.STRONG_STYLE.MAX_MAGNITUDE = 1.0
_C.INPUT.STRONG_STYLE.CUTOUT_SIZE = 16
_C.INPUT.STRONG_STYLE.CUTOUT_FILL = (127, 127, 127)
# Which strong augmentation: "ours" (the op list above, at the original resolution, followed by the
# usual train transform) or "release" (the release's target-free transform: resize + center crop to
# INPUT.SIZE, then NUM_OPS ops drawn with replacement from its 14-op table (Identity included) at a
# strength of 1..9 tenths, each with probability PROB, then the cutout; no random crop or flip after).
# MAX_MAGNITUDE is not used by "release".
_C.INPUT.STRONG_STYLE.VARIANT = "ours"
# "auth_mixture" (authorization scenario, unauthorized stream): per image, rates of the cases
# (watermark + strong_style, strong_style only, clean); non-negative, summing to 1.
_C.INPUT.AUTH_MIX = CN()
_C.INPUT.AUTH_MIX.RATES = (1 / 3, 1 / 3, 1 / 3)
# The release's accident, reproduced on demand: once an image of the stream (in one data-loader
# worker and epoch) has drawn a strong_style case, every later "clean" draw is strong_style only too.
_C.INPUT.AUTH_MIX.STICKY = False


def get_cfg_default():
    return _C.clone()
