"""jmlp: a functional JAX multi-layer perceptron with a hand-written backward pass.

Public names, one per line; implementation in the modules named.
"""

import time

IMPORT_STARTED = time.time()  # the command line's time line counts its imports from here

from jmlp import cache as cache
from jmlp import data as data
from jmlp import optim as optim
from jmlp import parallel as parallel
from jmlp.activations import ACTIVATIONS as ACTIVATIONS
from jmlp.backprop import autodiff as autodiff
from jmlp.backprop import backprop as backprop
from jmlp.backprop import backprop_many as backprop_many
from jmlp.backprop import custom_vjp_loss as custom_vjp_loss
from jmlp.cache import use_compilation_cache as use_compilation_cache
from jmlp.checkpoint import Checkpoint as Checkpoint
from jmlp.checkpoint import load_checkpoint as load_checkpoint
from jmlp.checkpoint import save_checkpoint as save_checkpoint
from jmlp.curvature import gnvp as gnvp
from jmlp.curvature import hvp as hvp
from jmlp.curvature import ntk as ntk
from jmlp.curvature import sharpness as sharpness
from jmlp.ensemble import Grid as Grid
from jmlp.ensemble import at_best as at_best
from jmlp.ensemble import ensemble_predict as ensemble_predict
from jmlp.ensemble import ensemble_predict_proba as ensemble_predict_proba
from jmlp.ensemble import grid as grid
from jmlp.ensemble import init_many as init_many
from jmlp.ensemble import member as member
from jmlp.ensemble import summarize as summarize
from jmlp.feedback import alignment as alignment
from jmlp.feedback import feedback_angles as feedback_angles
from jmlp.feedback import feedback_grads as feedback_grads
from jmlp.feedback import init_feedback as init_feedback
from jmlp.feedback import update_angles as update_angles
from jmlp.forward import forward as forward
from jmlp.forward import forward_cache as forward_cache
from jmlp.forward import loss as loss
from jmlp.gradient_check import gradcheck as gradcheck
from jmlp.init import init_params as init_params
from jmlp.losses import LOSSES as LOSSES
from jmlp.metrics import accuracy as accuracy
from jmlp.metrics import error_rate as error_rate
from jmlp.metrics import predict as predict
from jmlp.metrics import predict_proba as predict_proba
from jmlp.metrics import r2_score as r2_score
from jmlp.net import MLP as MLP
from jmlp.parallel import data_mesh as data_mesh
from jmlp.per_example import per_example_grad_norms as per_example_grad_norms
from jmlp.per_example import per_example_grads as per_example_grads
from jmlp.precondition import KfacState as KfacState
from jmlp.precondition import kfac as kfac
from jmlp.quantities import diag_ggn as diag_ggn
from jmlp.quantities import diag_ggn_mc as diag_ggn_mc
from jmlp.quantities import diag_hessian as diag_hessian
from jmlp.quantities import grad_variance as grad_variance
from jmlp.quantities import kfac_factors as kfac_factors
from jmlp.quantities import sum_grad_squared as sum_grad_squared
from jmlp.runs import load_run as load_run
from jmlp.train import EnsembleResult as EnsembleResult
from jmlp.train import FitResult as FitResult
from jmlp.train import NonFiniteLossError as NonFiniteLossError
from jmlp.train import fit as fit
from jmlp.train import fit_many as fit_many

__version__ = "0.1.0"

cache.default_cache()  # compiled programs kept on disk between processes (jmlp.cache)
