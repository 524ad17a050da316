"""Mock of ComfyUI's folder_paths.py: the directories, the model folder registry (checkpoints,
loras: get_folder_paths, get_full_path, get_full_path_or_raise, get_filename_list) and
get_save_image_path."""
import os

base_path = os.environ.get("COMFY_MOCK_BASE", os.path.join(os.getcwd(), "comfy_mock_base"))
output_directory = os.path.join(base_path, "output")
temp_directory = os.path.join(base_path, "temp")
input_directory = os.path.join(base_path, "input")
models_dir = os.path.join(base_path, "models")
supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
folder_names_and_paths = {name: ([os.path.join(models_dir, name)], supported_pt_extensions) for name in ("checkpoints", "loras")}


def set_base(path):
    global base_path, output_directory, temp_directory, input_directory, models_dir
    base_path = path
    output_directory = os.path.join(path, "output")
    temp_directory = os.path.join(path, "temp")
    input_directory = os.path.join(path, "input")
    models_dir = os.path.join(path, "models")
    for name in folder_names_and_paths:
        folder_names_and_paths[name] = ([os.path.join(models_dir, name)], supported_pt_extensions)


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]


def get_full_path(folder_name, filename):
    """The first existing file of that name under the folder's directories, else None."""
    for folder in get_folder_paths(folder_name):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


def get_full_path_or_raise(folder_name, filename):
    """get_full_path, or FileNotFoundError("Model in folder '<folder>' with filename '<name>' not
    found.") as the real one raises (what a loader node such as LoraLoader calls)."""
    full_path = get_full_path(folder_name, filename)
    if full_path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full_path


def get_filename_list(folder_name):
    """Files under the folder's directories (relative names, '/' separated), sorted."""
    names = set()
    for folder in get_folder_paths(folder_name):
        for root, _, files in os.walk(folder):
            for name in files:
                if os.path.splitext(name)[1] in folder_names_and_paths[folder_name][1]:
                    names.add(os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/"))
    return sorted(names)


def get_output_directory():
    return output_directory


def get_temp_directory():
    return temp_directory


def get_input_directory():
    return input_directory


def get_save_image_path(filename_prefix, output_dir, image_width=0, image_height=0):
    def map_filename(filename):
        prefix_len = len(os.path.basename(filename_prefix))
        prefix = filename[: prefix_len + 1]
        try:
            digits = int(filename[prefix_len + 1 :].split("_")[0])
        except ValueError:
            digits = 0
        return digits, prefix

    filename_prefix = filename_prefix.replace("%width%", str(image_width)).replace("%height%", str(image_height))
    subfolder = os.path.dirname(os.path.normpath(filename_prefix))
    filename = os.path.basename(os.path.normpath(filename_prefix))
    full_output_folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(full_output_folder))) != output_dir:
        raise Exception(f"Saving image outside the output folder is not allowed: {full_output_folder}")
    try:
        counter = (
            max(
                filter(
                    lambda a: os.path.normcase(a[1][:-1]) == os.path.normcase(filename) and a[1][-1] == "_",
                    map(map_filename, os.listdir(full_output_folder)),
                )
            )[0]
            + 1
        )
    except (ValueError, FileNotFoundError):
        os.makedirs(full_output_folder, exist_ok=True)
        counter = 1
    return full_output_folder, filename, counter, subfolder, filename_prefix


def get_directory_by_type(type_name):
    return {"output": output_directory, "temp": temp_directory, "input": input_directory}.get(type_name)
