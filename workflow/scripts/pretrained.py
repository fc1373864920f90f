"""Rule pretrained: a variant's model file from its published checkpoint (no training): SHA-256 checked, read with
weights_only, every key and shape checked against the variant's network, saved as the train rule saves a model."""

from robustcs import params as decode
from robustcs.networks import load_published, save_model
from robustcs.util import script_logger

log = script_logger(snakemake.log[0])
spec = decode.network(snakemake.params.spec)
source = snakemake.input.checkpoint
try:
    model = load_published(source, spec, snakemake.wildcards.method, snakemake.params.sha256)
except Exception:
    log.exception("cannot use %s for %s", source, snakemake.wildcards.method)
    raise
save_model(snakemake.output.model, spec, model)
log.info("%s: model file from %s (%d tensors)", snakemake.wildcards.method, source, len(model.state_dict()))
