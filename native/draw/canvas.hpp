// Pictures for people: a small RGB canvas to compose sample grids, text (DejaVu Sans via
// stb_truetype), histograms, line charts and bar charts, saved as PNG. Used for report.png,
// loss curves, mask previews and score histograms.
#pragma once

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace lethe::draw {

using Color = std::array<float, 3>;  // RGB in [0, 1]

namespace colors {
inline constexpr Color white{1, 1, 1}, black{0, 0, 0}, grey{0.55f, 0.55f, 0.55f}, light{0.92f, 0.92f, 0.92f};
inline constexpr Color blue{0.16f, 0.42f, 0.75f}, orange{0.93f, 0.49f, 0.13f}, green{0.2f, 0.63f, 0.28f},
    red{0.84f, 0.16f, 0.16f}, purple{0.55f, 0.34f, 0.69f};
// A qualitative palette for series i.
Color series(size_t i);
}  // namespace colors

struct Rect {
  int x = 0, y = 0, width = 0, height = 0;
};

class Canvas {
 public:
  Canvas(int width, int height, Color background = colors::white);
  int width() const { return width_; }
  int height() const { return height_; }

  // Pastes an image [C, H, W] (C = 1 or 3, values in [0, 1]) at (x, y), scaled by an
  // integer factor (nearest neighbour, so pixels stay crisp).
  void paste(const at::Tensor& image, int x, int y, int scale = 1);
  void fill(const Rect& rect, Color color, float alpha = 1.0f);
  void frame(const Rect& rect, Color color, int thickness = 1);
  void line(double x0, double y0, double x1, double y1, Color color, int thickness = 1);
  // Text with its top-left corner at (x, y); `size` is the pixel height. Returns the width.
  int text(const std::string& text, int x, int y, int size, Color color = colors::black, bool bold = false);
  int text_width(const std::string& text, int size, bool bold = false) const;
  void text_centered(const std::string& text, const Rect& box, int size, Color color = colors::black, bool bold = false);

  at::Tensor tensor() const;  // [3, H, W] float in [0, 1]
  void save_png(const std::filesystem::path& path) const;

 private:
  void blend(int x, int y, Color color, float alpha);
  int width_, height_;
  std::vector<float> pixels_;  // H x W x 3
};

struct Series {
  std::string label;
  std::vector<double> values;  // histogram samples, or y values of a line
  std::vector<double> x;       // line charts: x values (empty = 0, 1, 2, ...)
};

// A histogram of several series over [low, high) with `bins` bins, outlined bars, a legend
// and an optional vertical marker (e.g. a threshold).
void draw_histogram(Canvas& canvas, const Rect& area, const std::string& title, const std::vector<Series>& series,
                    double low, double high, int bins, std::optional<std::pair<double, std::string>> marker = {});

// Line chart of several series; log_y plots log10(y) for positive values.
void draw_line_chart(Canvas& canvas, const Rect& area, const std::string& title, const std::vector<Series>& series,
                     const std::string& x_label, bool log_y = false);

// Grouped bar chart: groups (x labels) x series (one value per group each).
void draw_bar_chart(Canvas& canvas, const Rect& area, const std::string& title, const std::vector<std::string>& groups,
                    const std::vector<Series>& series);

// A grid of images [N, C, H, W] with optional captions under each cell.
void draw_image_grid(Canvas& canvas, int x, int y, const at::Tensor& images, int columns, int scale,
                     const std::vector<std::string>& captions = {}, int caption_size = 12, int gap = 4);

}  // namespace lethe::draw
