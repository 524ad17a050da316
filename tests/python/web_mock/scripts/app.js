// Stand-in for the ComfyUI frontend's scripts/app.js module (1.27.10 exports these three names;
// an extension importing any other name fails to load, as in the browser).
export const ANIM_PREVIEW_WIDGET = "$$comfy_animation_preview";

export class ComfyApp {
  constructor() {
    this.extensions = [];
  }

  registerExtension(extension) {
    if (!extension.name) throw new Error("Extensions must have a 'name' property.");
    if (this.extensions.some((known) => known.name === extension.name)) {
      throw new Error(`Extension named '${extension.name}' already registered.`);
    }
    this.extensions.push(extension);
  }
}

export const app = new ComfyApp();
