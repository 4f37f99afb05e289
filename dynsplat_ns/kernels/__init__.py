"""The compiled CPU kernels (one C++/OpenMP torch extension, built on first use), shared by render/ and motion/."""
