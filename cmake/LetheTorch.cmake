# The torch of a Python environment, as imported targets, found the way torch's own extension
# builder (torch.utils.cpp_extension) finds it — not with find_package(Torch), whose Caffe2
# config asks a CUDA wheel for a CUDA toolkit (nvcc, CUDA_nvrtc_LIBRARY) that Lethe never uses:
# its C++ calls ATen only.
#
#   lethe::torch         headers, the C++ ABI define, libc10, libtorch_cpu, libtorch
#   lethe::torch_python  libtorch_python, for the Python module
#   lethe::torch_cuda    a CUDA wheel's libtorch_cuda and libc10_cuda, linked whether or not a
#                        symbol is used (their load registers the CUDA backend), so a program
#                        outside Python can use the GPU; empty for a CPU wheel
#
# Input: Python3_EXECUTABLE. Output: LETHE_TORCH_RUNTIME_DIRS, the folders a program's RPATH
# needs (torch/lib, and a CUDA wheel's nvidia/*/lib), and LETHE_TORCH_SITE_PACKAGES, the folder
# that holds torch.
execute_process(
  COMMAND "${Python3_EXECUTABLE}" "${CMAKE_CURRENT_LIST_DIR}/torch_paths.py"
  OUTPUT_VARIABLE torch_paths ERROR_VARIABLE torch_paths_error RESULT_VARIABLE torch_paths_status)
if(NOT torch_paths_status EQUAL 0)
  string(REGEX REPLACE ".*\n([^\n]+)\n?$" "\\1" torch_paths_error "\n${torch_paths_error}")
  if(SKBUILD)
    string(CONCAT torch_paths_hint "; pip builds in an isolated environment without torch unless told not to: "
      "run `pip install --no-build-isolation .` (or `make wheel`) with the Python that has torch")
  endif()
  message(FATAL_ERROR "torch: ${Python3_EXECUTABLE} cannot import torch and torch.utils.cpp_extension "
    "(expected the Python that Lethe is built for, with torch installed), got: ${torch_paths_error}${torch_paths_hint}")
endif()
foreach(key IN ITEMS version include_dirs library_dirs cxx11_abi cuda nvidia_library_dirs site_packages)
  string(REGEX MATCH "(^|\n)${key}=([^\n]*)" line "${torch_paths}")
  set(torch_${key} "${CMAKE_MATCH_2}")
endforeach()
list(GET torch_include_dirs 0 torch_include_first)
if(NOT EXISTS "${torch_include_first}/ATen/ATen.h")
  message(FATAL_ERROR "torch ${torch_version} of ${Python3_EXECUTABLE}: no C++ headers in '${torch_include_first}' "
    "(expected ATen/ATen.h there, as a torch wheel ships it)")
endif()

# One library of torch's, by name, from the wheel's library folder only.
function(lethe_torch_library variable name)
  find_library(${variable} ${name} PATHS ${torch_library_dirs} NO_DEFAULT_PATH NO_CACHE)
  if(NOT ${variable} AND NOT ARGV2 STREQUAL "OPTIONAL")
    message(FATAL_ERROR "torch ${torch_version} of ${Python3_EXECUTABLE}: lib${name}.so not found "
      "(expected in ${torch_library_dirs})")
  endif()
  set(${variable} "${${variable}}" PARENT_SCOPE)
endfunction()
lethe_torch_library(torch_c10 c10)
lethe_torch_library(torch_cpu torch_cpu)
lethe_torch_library(torch_torch torch)
lethe_torch_library(torch_python torch_python)

add_library(lethe::torch INTERFACE IMPORTED)
target_include_directories(lethe::torch SYSTEM INTERFACE ${torch_include_dirs})
target_compile_definitions(lethe::torch INTERFACE _GLIBCXX_USE_CXX11_ABI=${torch_cxx11_abi})
target_link_libraries(lethe::torch INTERFACE ${torch_c10} ${torch_cpu} ${torch_torch})
# A CUDA wheel's libtorch.so needs libtorch_cuda, which needs the nvidia-* wheels' libraries:
# the linker looks for them there (they are never linked directly).
if(torch_nvidia_library_dirs)
  list(JOIN torch_nvidia_library_dirs ":" torch_rpath_link)
  target_link_options(lethe::torch INTERFACE "LINKER:-rpath-link,${torch_rpath_link}")
endif()

# torch's OpenMP runtime: the wheels ship libgomp.so.1 beside libtorch_cpu. Lethe's own parallel
# loops (at::parallel_for is a header template: its `omp parallel` compiles into Lethe's code)
# need -fopenmp and must use that same runtime, so ATen's threads and Lethe's are one pool.
# lethe::torch_openmp carries the link; LETHE_TORCH_OPENMP_FLAGS the compile flag for the
# sources that use it. Without it (another compiler, a torch without its own libgomp) those
# loops run on the calling thread.
find_library(torch_gomp NAMES libgomp.so.1 PATHS ${torch_library_dirs} NO_DEFAULT_PATH NO_CACHE)
add_library(lethe::torch_openmp INTERFACE IMPORTED)
set(LETHE_TORCH_OPENMP_FLAGS "")
if(torch_gomp AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  target_link_libraries(lethe::torch_openmp INTERFACE ${torch_gomp})
  set(LETHE_TORCH_OPENMP_FLAGS -fopenmp)
endif()

add_library(lethe::torch_python INTERFACE IMPORTED)
target_link_libraries(lethe::torch_python INTERFACE lethe::torch ${torch_python})

add_library(lethe::torch_cuda INTERFACE IMPORTED)
set(LETHE_TORCH_SITE_PACKAGES "${torch_site_packages}")
set(LETHE_TORCH_RUNTIME_DIRS ${torch_library_dirs})
if(torch_cuda)
  lethe_torch_library(torch_cuda_library torch_cuda OPTIONAL)
  lethe_torch_library(torch_c10_cuda c10_cuda OPTIONAL)
  if(torch_cuda_library AND torch_c10_cuda)
    target_link_libraries(lethe::torch_cuda INTERFACE lethe::torch
      "-Wl,--push-state,--no-as-needed" ${torch_c10_cuda} ${torch_cuda_library} "-Wl,--pop-state")
    list(APPEND LETHE_TORCH_RUNTIME_DIRS ${torch_nvidia_library_dirs})
  endif()
  message(STATUS "torch ${torch_version} (a CUDA ${torch_cuda} wheel; no CUDA toolkit used) of ${Python3_EXECUTABLE}")
else()
  message(STATUS "torch ${torch_version} of ${Python3_EXECUTABLE}")
endif()
