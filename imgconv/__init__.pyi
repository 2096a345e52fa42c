# The public API of imgconv: what a type checker sees, and (read by
# __init__.py on first use) what `imgconv.NAME` imports lazily.
from imgconv.errors import ImgconvError as ImgconvError
from imgconv.errors import InputError as InputError
from imgconv.errors import KernelError as KernelError
from imgconv.errors import OutputError as OutputError
from imgconv.errors import ParameterError as ParameterError
from imgconv.errors import UsageFailure as UsageFailure
from imgconv.filtering import convolve as convolve
from imgconv.filtering import filter_image as filter_image
from imgconv.finishing import Finish as Finish
from imgconv.finishing import finish as finish
from imgconv.jobs import OutputOptions as OutputOptions
from imgconv.jobs import apply_file as apply_file
from imgconv.jobs import pool_file as pool_file
from imgconv.kernels import Kernel as Kernel
from imgconv.kernels import Registry as Registry
from imgconv.kernels import box as box
from imgconv.kernels import gaussian as gaussian
from imgconv.kernels import load_registry as load_registry
from imgconv.kernels import parse_spec as parse_spec
from imgconv.picture import Picture as Picture
from imgconv.plan import FilterOptions as FilterOptions
from imgconv.plan import FilterPlan as FilterPlan
from imgconv.pooling import PoolOptions as PoolOptions
from imgconv.pooling import pool as pool
from imgconv.reading import read_frames as read_frames
from imgconv.reading import read_picture as read_picture
from imgconv.writing import write_frames as write_frames
from imgconv.writing import write_picture as write_picture

__version__: str
__all__: list[str]
