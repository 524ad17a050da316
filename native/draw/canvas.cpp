#include "draw/canvas.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>

#include <ATen/ATen.h>
#include <stb/stb_truetype.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "io/atomic_file.hpp"

namespace lethe::draw {

Color colors::series(size_t i) {
  static const Color palette[] = {blue, orange, green, red, purple, grey};
  return palette[i % 6];
}

namespace {

// One loaded font face (regular or bold), from fonts-dejavu-core.
class Font {
 public:
  explicit Font(bool bold) {
    const char* path = bold ? "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
                            : "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    check(std::filesystem::exists(path), "font '", path, "' not found (install the Debian package fonts-dejavu-core)");
    data_ = io::read_file(path);
    check(stbtt_InitFont(&info_, reinterpret_cast<const unsigned char*>(data_.data()), 0) != 0, "cannot read font '",
          path, "'");
  }
  const stbtt_fontinfo& info() const { return info_; }

 private:
  std::string data_;
  stbtt_fontinfo info_{};
};

const Font& font(bool bold) {
  static const Font regular(false), heavy(true);
  return bold ? heavy : regular;
}

}  // namespace

Canvas::Canvas(int width, int height, Color background) : width_(width), height_(height) {
  check(width > 0 && height > 0, "canvas: size must be positive, got ", width, "x", height);
  pixels_.resize(static_cast<size_t>(width) * height * 3);
  for (size_t i = 0; i < pixels_.size(); i += 3) std::copy(background.begin(), background.end(), pixels_.begin() + i);
}

void Canvas::blend(int x, int y, Color color, float alpha) {
  if (x < 0 || y < 0 || x >= width_ || y >= height_ || alpha <= 0) return;
  float* pixel = &pixels_[(static_cast<size_t>(y) * width_ + x) * 3];
  for (int c = 0; c < 3; ++c) pixel[c] = pixel[c] * (1 - alpha) + color[c] * alpha;
}

void Canvas::paste(const at::Tensor& image, int x, int y, int scale) {
  check(image.dim() == 3 && (image.size(0) == 1 || image.size(0) == 3), "canvas: paste expects [1 or 3, H, W], got ",
        image.sizes());
  at::Tensor rgb = image.detach().to(at::kCPU, at::kFloat).clamp(0, 1).expand({3, image.size(1), image.size(2)}).contiguous();
  auto a = rgb.accessor<float, 3>();
  for (int64_t row = 0; row < rgb.size(1); ++row)
    for (int64_t col = 0; col < rgb.size(2); ++col)
      for (int dy = 0; dy < scale; ++dy)
        for (int dx = 0; dx < scale; ++dx)
          blend(x + static_cast<int>(col) * scale + dx, y + static_cast<int>(row) * scale + dy,
                {a[0][row][col], a[1][row][col], a[2][row][col]}, 1.0f);
}

void Canvas::fill(const Rect& r, Color color, float alpha) {
  for (int y = r.y; y < r.y + r.height; ++y)
    for (int x = r.x; x < r.x + r.width; ++x) blend(x, y, color, alpha);
}

void Canvas::frame(const Rect& r, Color color, int thickness) {
  fill({r.x, r.y, r.width, thickness}, color);
  fill({r.x, r.y + r.height - thickness, r.width, thickness}, color);
  fill({r.x, r.y, thickness, r.height}, color);
  fill({r.x + r.width - thickness, r.y, thickness, r.height}, color);
}

void Canvas::line(double x0, double y0, double x1, double y1, Color color, int thickness) {
  const double length = std::max(std::abs(x1 - x0), std::abs(y1 - y0));
  const int steps = std::max(1, static_cast<int>(std::ceil(length * 2)));
  for (int i = 0; i <= steps; ++i) {
    const double t = static_cast<double>(i) / steps;
    const int x = static_cast<int>(std::lround(x0 + (x1 - x0) * t)), y = static_cast<int>(std::lround(y0 + (y1 - y0) * t));
    for (int dy = -(thickness - 1) / 2; dy <= thickness / 2; ++dy)
      for (int dx = -(thickness - 1) / 2; dx <= thickness / 2; ++dx) blend(x + dx, y + dy, color, 1.0f);
  }
}

int Canvas::text_width(const std::string& text, int size, bool bold) const {
  const stbtt_fontinfo& info = font(bold).info();
  const float scale = stbtt_ScaleForPixelHeight(&info, static_cast<float>(size));
  int width = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    int advance = 0, bearing = 0;
    stbtt_GetCodepointHMetrics(&info, static_cast<unsigned char>(text[i]), &advance, &bearing);
    width += static_cast<int>(std::lround(advance * scale));
    if (i + 1 < text.size())
      width += static_cast<int>(std::lround(stbtt_GetCodepointKernAdvance(&info, text[i], text[i + 1]) * scale));
  }
  return width;
}

int Canvas::text(const std::string& text, int x, int y, int size, Color color, bool bold) {
  const stbtt_fontinfo& info = font(bold).info();
  const float scale = stbtt_ScaleForPixelHeight(&info, static_cast<float>(size));
  int ascent = 0, descent = 0, gap = 0;
  stbtt_GetFontVMetrics(&info, &ascent, &descent, &gap);
  const int baseline = y + static_cast<int>(std::lround(ascent * scale));
  int cursor = x;
  for (size_t i = 0; i < text.size(); ++i) {
    const int codepoint = static_cast<unsigned char>(text[i]);
    int advance = 0, bearing = 0;
    stbtt_GetCodepointHMetrics(&info, codepoint, &advance, &bearing);
    int w = 0, h = 0, xoff = 0, yoff = 0;
    unsigned char* bitmap = stbtt_GetCodepointBitmap(&info, 0, scale, codepoint, &w, &h, &xoff, &yoff);
    for (int row = 0; row < h; ++row)
      for (int col = 0; col < w; ++col)
        blend(cursor + xoff + col, baseline + yoff + row, color, bitmap[row * w + col] / 255.0f);
    stbtt_FreeBitmap(bitmap, nullptr);
    cursor += static_cast<int>(std::lround(advance * scale));
    if (i + 1 < text.size())
      cursor += static_cast<int>(std::lround(stbtt_GetCodepointKernAdvance(&info, text[i], text[i + 1]) * scale));
  }
  return cursor - x;
}

void Canvas::text_centered(const std::string& text, const Rect& box, int size, Color color, bool bold) {
  const int width = text_width(text, size, bold);
  this->text(text, box.x + (box.width - width) / 2, box.y + (box.height - size) / 2, size, color, bold);
}

at::Tensor Canvas::tensor() const {
  return at::from_blob(const_cast<float*>(pixels_.data()), {height_, width_, 3}, at::kFloat).permute({2, 0, 1}).clone();
}

void Canvas::save_png(const std::filesystem::path& path) const { data::write_png(path, tensor()); }

namespace {

std::string number_text(double value) {
  char buffer[32];
  if (value != 0 && (std::abs(value) >= 1e4 || std::abs(value) < 1e-2)) {
    std::snprintf(buffer, sizeof(buffer), "%.1e", value);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%.3g", value);
  }
  return buffer;
}

struct Plot {
  Rect frame;  // the data area
};

Plot draw_axes(Canvas& canvas, const Rect& area, const std::string& title, double x_low, double x_high, double y_low,
               double y_high, const std::string& x_label, bool log_y) {
  canvas.text(title, area.x + 4, area.y + 2, 15, colors::black, true);
  Plot plot;
  plot.frame = {area.x + 58, area.y + 26, area.width - 72, area.height - 62};
  canvas.frame(plot.frame, colors::grey);
  for (int i = 0; i <= 4; ++i) {
    const double fraction = i / 4.0;
    const int y = plot.frame.y + plot.frame.height - static_cast<int>(fraction * plot.frame.height);
    double value = y_low + (y_high - y_low) * fraction;
    if (log_y) value = std::pow(10.0, value);
    canvas.fill({plot.frame.x + 1, y, plot.frame.width - 2, 1}, colors::light);
    const std::string label = number_text(value);
    canvas.text(label, plot.frame.x - 6 - canvas.text_width(label, 11), y - 6, 11, colors::grey);
    const int x = plot.frame.x + static_cast<int>(fraction * plot.frame.width);
    const std::string x_text = number_text(x_low + (x_high - x_low) * fraction);
    canvas.text(x_text, x - canvas.text_width(x_text, 11) / 2, plot.frame.y + plot.frame.height + 4, 11, colors::grey);
  }
  if (!x_label.empty())
    canvas.text(x_label, plot.frame.x + plot.frame.width / 2 - canvas.text_width(x_label, 12) / 2,
                plot.frame.y + plot.frame.height + 18, 12, colors::black);
  return plot;
}

void draw_legend(Canvas& canvas, const Plot& plot, const std::vector<Series>& series) {
  int y = plot.frame.y + 6;
  for (size_t i = 0; i < series.size(); ++i) {
    const int width = canvas.text_width(series[i].label, 12);
    const int x = plot.frame.x + plot.frame.width - width - 24;
    canvas.fill({x - 2, y - 1, width + 22, 16}, colors::white);
    canvas.fill({x, y + 3, 12, 8}, colors::series(i));
    canvas.text(series[i].label, x + 16, y, 12);
    y += 17;
  }
}

}  // namespace

void draw_histogram(Canvas& canvas, const Rect& area, const std::string& title, const std::vector<Series>& series,
                    double low, double high, int bins, std::optional<std::pair<double, std::string>> marker) {
  check(bins >= 1 && high > low, "histogram: need bins >= 1 and high > low");
  std::vector<std::vector<double>> counts(series.size(), std::vector<double>(bins, 0.0));
  double peak = 0;
  for (size_t s = 0; s < series.size(); ++s) {
    for (double v : series[s].values) {
      int bin = static_cast<int>((v - low) / (high - low) * bins);
      counts[s][std::clamp(bin, 0, bins - 1)] += 1.0 / std::max<size_t>(1, series[s].values.size());
    }
    for (double c : counts[s]) peak = std::max(peak, c);
  }
  Plot plot = draw_axes(canvas, area, title, low, high, 0, std::max(peak, 1e-9), "", false);
  const double bin_width = static_cast<double>(plot.frame.width) / bins;
  for (size_t s = 0; s < series.size(); ++s) {
    const Color color = colors::series(s);
    for (int b = 0; b < bins; ++b) {
      const int height = static_cast<int>(counts[s][b] / std::max(peak, 1e-9) * (plot.frame.height - 2));
      if (height <= 0) continue;
      Rect bar{plot.frame.x + static_cast<int>(b * bin_width) + 1, plot.frame.y + plot.frame.height - 1 - height,
               std::max(1, static_cast<int>(bin_width) - 1), height};
      canvas.fill(bar, color, 0.45f);
    }
  }
  // Re-draw the outlines of every series so overlaps stay readable.
  for (size_t s = 0; s < series.size(); ++s)
    for (int b = 0; b < bins; ++b) {
      const int height = static_cast<int>(counts[s][b] / std::max(peak, 1e-9) * (plot.frame.height - 2));
      if (height > 0)
        canvas.frame({plot.frame.x + static_cast<int>(b * bin_width) + 1, plot.frame.y + plot.frame.height - 1 - height,
                      std::max(1, static_cast<int>(bin_width) - 1), height},
                     colors::series(s));
    }
  if (marker) {
    const int x = plot.frame.x + static_cast<int>((marker->first - low) / (high - low) * plot.frame.width);
    canvas.line(x, plot.frame.y, x, plot.frame.y + plot.frame.height, colors::black, 2);
    canvas.text(marker->second, x + 4, plot.frame.y + 4, 12, colors::black);
  }
  draw_legend(canvas, plot, series);
}

void draw_line_chart(Canvas& canvas, const Rect& area, const std::string& title, const std::vector<Series>& series,
                     const std::string& x_label, bool log_y) {
  double x_low = 0, x_high = 1, y_low = 1e300, y_high = -1e300;
  auto y_of = [&](double v) { return log_y ? std::log10(std::max(v, 1e-12)) : v; };
  for (const auto& s : series) {
    for (size_t i = 0; i < s.values.size(); ++i) {
      const double x = s.x.empty() ? static_cast<double>(i) : s.x[i];
      x_high = std::max(x_high, x);
      y_low = std::min(y_low, y_of(s.values[i]));
      y_high = std::max(y_high, y_of(s.values[i]));
    }
  }
  if (y_low > y_high) y_low = 0, y_high = 1;
  if (y_high - y_low < 1e-12) y_high = y_low + 1;
  Plot plot = draw_axes(canvas, area, title, x_low, x_high, y_low, y_high, x_label, log_y);
  for (size_t s = 0; s < series.size(); ++s) {
    const auto& values = series[s].values;
    auto point = [&](size_t k) {
      const double x = series[s].x.empty() ? static_cast<double>(k) : series[s].x[k];
      return std::make_pair(plot.frame.x + (x - x_low) / (x_high - x_low) * plot.frame.width,
                            plot.frame.y + plot.frame.height - (y_of(values[k]) - y_low) / (y_high - y_low) * plot.frame.height);
    };
    for (size_t i = 1; i < values.size(); ++i) {
      auto [x0, y0] = point(i - 1);
      auto [x1, y1] = point(i);
      canvas.line(x0, y0, x1, y1, colors::series(s), 2);
    }
    if (values.size() == 1) {  // a single point has no line: a square marks it
      auto [x, y] = point(0);
      canvas.fill({static_cast<int>(x) - 4, static_cast<int>(y) - 4, 9, 9}, colors::series(s));
    }
  }
  draw_legend(canvas, plot, series);
}

void draw_bar_chart(Canvas& canvas, const Rect& area, const std::string& title, const std::vector<std::string>& groups,
                    const std::vector<Series>& series) {
  double high = 0;
  for (const auto& s : series)
    for (double v : s.values) high = std::max(high, v);
  if (high <= 0) high = 1;
  canvas.text(title, area.x + 4, area.y + 2, 15, colors::black, true);
  Rect frame{area.x + 10, area.y + 26, area.width - 20, area.height - 64};
  canvas.fill({frame.x, frame.y + frame.height, frame.width, 1}, colors::grey);
  const double group_width = static_cast<double>(frame.width) / std::max<size_t>(1, groups.size());
  const double bar_width = (group_width - 12) / std::max<size_t>(1, series.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const int group_x = frame.x + static_cast<int>(g * group_width) + 6;
    for (size_t s = 0; s < series.size(); ++s) {
      if (g >= series[s].values.size()) continue;
      const double value = series[s].values[g];
      const int height = static_cast<int>(value / high * (frame.height - 16));
      Rect bar{group_x + static_cast<int>(s * bar_width), frame.y + frame.height - height,
               std::max(1, static_cast<int>(bar_width) - 2), height};
      canvas.fill(bar, colors::series(s));
      const std::string label = number_text(value);
      canvas.text(label, bar.x + bar.width / 2 - canvas.text_width(label, 10) / 2, bar.y - 13, 10, colors::black);
    }
    canvas.text_centered(groups[g], {group_x, frame.y + frame.height + 4, static_cast<int>(group_width) - 12, 16}, 12);
  }
  int x = frame.x;
  for (size_t s = 0; s < series.size(); ++s) {
    canvas.fill({x, area.y + area.height - 16, 12, 8}, colors::series(s));
    x += 16 + canvas.text(series[s].label, x + 16, area.y + area.height - 20, 12) + 12;
  }
}

void draw_image_grid(Canvas& canvas, int x, int y, const at::Tensor& images, int columns, int scale,
                     const std::vector<std::string>& captions, int caption_size, int gap) {
  check(images.dim() == 4, "image grid: expected [N, C, H, W], got ", images.sizes());
  const int cell_w = static_cast<int>(images.size(3)) * scale, cell_h = static_cast<int>(images.size(2)) * scale;
  const int caption_h = captions.empty() ? 0 : caption_size + 4;
  for (int64_t i = 0; i < images.size(0); ++i) {
    const int cx = x + static_cast<int>(i % columns) * (cell_w + gap);
    const int cy = y + static_cast<int>(i / columns) * (cell_h + caption_h + gap);
    canvas.paste(images[i], cx, cy, scale);
    if (static_cast<size_t>(i) < captions.size())
      canvas.text_centered(captions[i], {cx, cy + cell_h + 1, cell_w, caption_size + 2}, caption_size);
  }
}

}  // namespace lethe::draw
