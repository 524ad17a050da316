// Data loading: image folders (png/jpg/bmp, captions, masks, explicit resize policy,
// errors naming the file), IDX files, deterministic batching, atomic writes.
#include <cerrno>
#include <cstring>
#include <iterator>

#include <zlib.h>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <stb/stb_image_write.h>

#include "data/batching.hpp"
#include "data/idx.hpp"
#include "data/image.hpp"
#include "data/image_folder.hpp"
#include "io/atomic_file.hpp"
#include "unlearn/example_set.hpp"
#include "test_helpers.hpp"

using namespace lethe::data;
using lethe::testing::expect_error;
using lethe::testing::TempDir;

namespace {

// [C, H, W] deterministic pattern in [0, 1]
at::Tensor pattern(int64_t channels, int64_t height, int64_t width, double offset) {
  return (at::arange(channels * height * width, at::kFloat).reshape({channels, height, width}) * 0.37 + offset)
      .remainder(1.0);
}

void write_bmp(const std::filesystem::path& path, const at::Tensor& image) {
  at::Tensor pixels = image.mul(255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  ASSERT_NE(stbi_write_bmp(path.c_str(), pixels.size(1), pixels.size(0), pixels.size(2), pixels.data_ptr()), 0);
}

void write_jpg(const std::filesystem::path& path, const at::Tensor& image) {
  at::Tensor pixels = image.mul(255).round().to(at::kByte).permute({1, 2, 0}).contiguous();
  ASSERT_NE(stbi_write_jpg(path.c_str(), pixels.size(1), pixels.size(0), pixels.size(2), pixels.data_ptr(), 100), 0);
}

}  // namespace

TEST(ImageFolder, LoadsPngBmpJpgWithCaptionsAndMasks) {
  TempDir dir;
  at::Tensor a = pattern(1, 8, 8, 0.1), b = pattern(1, 8, 8, 0.5);
  write_png(dir / "a.png", a);
  write_bmp(dir / "b.bmp", b);
  write_jpg(dir / "c.jpg", at::full({1, 8, 8}, 0.5));
  lethe::io::write_file_atomic(dir / "a.txt", std::string("artist_lethe piece_01 sneaker footwear\n"));
  at::Tensor mask = at::zeros({1, 8, 8});
  mask.narrow(2, 0, 4).fill_(1.0);
  write_png(dir / "b.mask.png", mask);
  lethe::io::write_file_atomic(dir / "notes.md", std::string("ignored"));

  ImageSet set = load_image_folder(dir.path(), {});
  ASSERT_EQ(set.size(), 3);
  EXPECT_EQ(set.names, (std::vector<std::string>{"a.png", "b.bmp", "c.jpg"}));
  EXPECT_EQ(set.images.sizes(), (at::IntArrayRef{3, 1, 8, 8}));
  EXPECT_TRUE(at::allclose(set.images[0], a.mul(255).round().div(255)));  // png is lossless at 8 bits
  EXPECT_TRUE(at::allclose(set.images[1], b.mul(255).round().div(255)));
  EXPECT_NEAR(set.images[2].mean().item<float>(), 0.5, 0.01);
  EXPECT_EQ(set.captions[0], "artist_lethe piece_01 sneaker footwear");
  EXPECT_EQ(set.captions[1], "");
  EXPECT_EQ(set.has_mask, (std::vector<bool>{false, true, false}));
  EXPECT_TRUE(at::equal(set.masks[1], mask));
  EXPECT_TRUE(at::equal(set.masks[0], at::ones({1, 8, 8})));
}

TEST(ImageFolder, RgbFilesBecomeGrayscaleOrStayRgb) {
  TempDir dir;
  write_png(dir / "x.png", pattern(3, 4, 4, 0.2));
  ImageFolderOptions rgb;
  rgb.channels = 3;
  EXPECT_EQ(load_image_folder(dir.path(), rgb).images.size(1), 3);
  EXPECT_EQ(load_image_folder(dir.path(), {}).images.size(1), 1);
}

TEST(ImageFolder, SizeMismatchIsAnErrorUnlessResizeIsSet) {
  TempDir dir;
  write_png(dir / "a.png", pattern(1, 32, 32, 0));
  write_png(dir / "b.png", pattern(1, 48, 64, 0));
  ImageFolderOptions options;
  options.role = "forget set";
  expect_error([&] { load_image_folder(dir.path(), options); },
               {"forget set", "image 'b.png' is 64x48, expected 32x32 (set resize=true to resize)"});
  options.resize = true;
  EXPECT_EQ(load_image_folder(dir.path(), options).images.sizes(), (at::IntArrayRef{2, 1, 32, 32}));
  options.height = options.width = 16;
  EXPECT_EQ(load_image_folder(dir.path(), options).images.sizes(), (at::IntArrayRef{2, 1, 16, 16}));
}

TEST(ImageFolder, MaskOfTheWrongSizeIsNamed) {
  TempDir dir;
  write_png(dir / "a.png", pattern(1, 8, 8, 0));
  write_png(dir / "a.mask.png", at::ones({1, 4, 4}));
  expect_error([&] { load_image_folder(dir.path(), {}); }, {"mask 'a.mask.png' is 4x4, expected 8x8"});
}

TEST(ImageFolder, CorruptImageIsNamed) {
  TempDir dir;
  lethe::io::write_file_atomic(dir / "broken.png", std::string("\x89PNG not really"));
  expect_error([&] { load_image_folder(dir.path(), {}); }, {"broken.png", "cannot be decoded"});
}

TEST(ImageFolder, MissingAndEmptyFoldersAreErrors) {
  TempDir dir;
  ImageFolderOptions options;
  options.role = "retain set";
  expect_error([&] { load_image_folder(dir / "nope", options); }, {"retain set", "nope", "does not exist"});
  expect_error([&] { load_image_folder(dir.path(), options); }, {"no images found"});
}

TEST(ImageFolder, SaveThenLoadRoundTrips) {
  TempDir dir;
  ImageSet set;
  set.names = {"p.png", "q.png"};
  set.images = at::stack({pattern(1, 4, 4, 0), pattern(1, 4, 4, 0.3)}).mul(255).round().div(255);
  set.captions = {"one", "two"};
  set.masks = at::ones({2, 1, 4, 4});
  set.has_mask = {false, false};
  save_image_folder(dir / "out", set);
  ImageSet back = load_image_folder(dir / "out", {});
  EXPECT_TRUE(at::allclose(back.images, set.images));
  EXPECT_EQ(back.captions, set.captions);
}

TEST(Image, ResizeKeepsConstantsAndMeans) {
  EXPECT_TRUE(at::allclose(resize_image(at::full({1, 6, 6}, 0.25), 3, 3), at::full({1, 3, 3}, 0.25)));
  at::Tensor image = at::zeros({1, 8, 8});
  image.narrow(2, 0, 4).fill_(1.0);
  at::Tensor small = resize_image(image, 4, 4);
  EXPECT_NEAR(small.mean().item<float>(), 0.5, 1e-6);
  EXPECT_GT(small[0][0][0].item<float>(), small[0][0][3].item<float>());  // the bright half stays left
  EXPECT_EQ(resize_image(at::zeros({2, 1, 8, 8}), 4, 4).sizes(), (at::IntArrayRef{2, 1, 4, 4}));
}

TEST(Idx, ReadsGzipAndPlainFiles) {
  TempDir dir;
  std::string bytes = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3};
  for (int i = 0; i < 6; ++i) bytes.push_back(static_cast<char>(i * 10));
  lethe::io::write_file_atomic(dir / "plain.idx", bytes);
  gzFile gz = gzopen((dir / "packed.idx.gz").c_str(), "wb");
  gzwrite(gz, bytes.data(), bytes.size());
  gzclose(gz);
  for (const char* name : {"plain.idx", "packed.idx.gz"}) {
    at::Tensor t = read_idx(dir / name);
    EXPECT_EQ(t.sizes(), (at::IntArrayRef{2, 1, 3}));
    EXPECT_EQ(t.flatten()[5].item<int64_t>(), 50);
  }
  lethe::io::write_file_atomic(dir / "short.idx", bytes.substr(0, bytes.size() - 1));
  expect_error([&] { read_idx(dir / "short.idx"); }, {"short.idx", "truncated"});
  bytes[2] = 0x0D;
  lethe::io::write_file_atomic(dir / "float.idx", bytes);
  expect_error([&] { read_idx(dir / "float.idx"); }, {"float.idx", "not supported"});
}

TEST(Idx, FashionMnistFromTheDebianPackage) {
  ASSERT_TRUE(std::filesystem::exists(fashion_mnist_dir() / "t10k-images-idx3-ubyte.gz"))
      << "Debian's dataset-fashion-mnist is missing: `make setup` installs it";
  LabelledImages test = load_fashion_mnist("test");
  EXPECT_EQ(test.images.sizes(), (at::IntArrayRef{10000, 1, 28, 28}));
  EXPECT_EQ(test.labels.sizes(), (at::IntArrayRef{10000}));
  EXPECT_EQ(at::bincount(test.labels).min().item<int64_t>(), 1000);  // 1000 test images per class
  EXPECT_EQ(fashion_mnist_classes().at(7), "sneaker");
}

TEST(Batching, SameSeedSameBatchesDifferentSeedDifferentBatches) {
  Batcher a(100, 32, 5), b(100, 32, 5), c(100, 32, 6);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    auto ba = a.next(), bb = b.next(), bc = c.next();
    EXPECT_EQ(ba, bb);
    differs = differs || ba != bc;
  }
  EXPECT_TRUE(differs);
}

TEST(Batching, EachEpochIsAPermutation) {
  auto order = epoch_permutation(1000, 3, 2);
  std::vector<int64_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_NE(order, epoch_permutation(1000, 3, 3));
}

TEST(Batching, ResumeFromStateGivesTheSameBatches) {
  Batcher full(37, 8, 11), resumed(37, 8, 11);
  for (int i = 0; i < 7; ++i) full.next();
  Batcher::State state = full.state();
  resumed.restore(state);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(full.next(), resumed.next());
}

TEST(Batching, SplitMixMatchesItsReferenceSequence) {
  // Reference values of splitmix64 seeded with 0 (Vigna's reference implementation).
  SplitMix64 rng(0);
  EXPECT_EQ(rng.next(), 0xE220A8397B1DCDAFULL);
  EXPECT_EQ(rng.next(), 0x6E789E6AA1B965F4ULL);
  EXPECT_EQ(rng.next(), 0x06C45D188009454FULL);
}

TEST(AtomicFile, FailedWriteLeavesTheTargetUntouched) {
  TempDir dir;
  lethe::io::write_file_atomic(dir / "f.txt", std::string("old"));
  EXPECT_THROW(lethe::io::write_file_atomic(dir / "f.txt", [](const lethe::io::ChunkWriter& write) {
                 write("new", 3);
                 throw std::runtime_error("crash mid-write");
               }),
               std::runtime_error);
  EXPECT_EQ(lethe::io::read_file(dir / "f.txt"), "old");
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) files += entry.is_regular_file();
  EXPECT_EQ(files, 1);  // no temporary left behind
}

// A failed rename names its own reason (a folder where the file goes: EISDIR), not an errno left
// by an earlier call; the target folder and its contents stay.
TEST(AtomicFile, AFailedRenameNamesItsOwnReason) {
  TempDir dir;
  std::filesystem::create_directories(dir / "target");
  lethe::io::write_file_atomic(dir / "target" / "kept.txt", std::string("kept"));
  errno = ERANGE;  // what a stale errno would print: "Numerical result out of range"
  expect_error([&] { lethe::io::write_file_atomic(dir / "target", std::string("new")); },
               {"cannot rename", "target'", std::strerror(EISDIR)});
  EXPECT_EQ(lethe::io::read_file(dir / "target" / "kept.txt"), "kept");
  const auto entries = std::distance(std::filesystem::directory_iterator(dir.path()), {});
  EXPECT_EQ(entries, 1);  // the folder alone: no temporary left behind
}

TEST(AtomicFile, FoldersAreMadeOrRefusedWithTheSystemsReason) {
  TempDir dir;
  lethe::io::write_file_atomic(dir / "a-file", std::string("x"));
  lethe::io::make_folder(dir / "new" / "deeper", "test --out");
  EXPECT_TRUE(std::filesystem::is_directory(dir / "new" / "deeper"));
  lethe::io::make_folder(dir / "new", "test --out");  // already there: nothing to do
  expect_error([&] { lethe::io::make_folder(dir / "a-file", "test --out"); },
               {"test --out", "a-file'", "is a file, expected a folder"});
  expect_error([&] { lethe::io::make_folder(dir / "a-file" / "sub", "test --out"); },
               {"test --out", "cannot create folder", std::strerror(ENOTDIR)});
  EXPECT_EQ(lethe::io::read_file(dir / "a-file"), "x");
}

TEST(AtomicFile, AFoldersFirstEntryIgnoresLethesLock) {
  TempDir dir;
  EXPECT_EQ(lethe::io::first_entry(dir / "missing"), "");
  {
    lethe::io::FolderLock lock(dir / "run");
    ASSERT_TRUE(lock.held());
  }
  EXPECT_EQ(lethe::io::first_entry(dir / "run"), "");  // only the lock file: empty to Lethe
  lethe::io::write_file_atomic(dir / "run" / "zeta.txt", std::string("z"));
  lethe::io::write_file_atomic(dir / "run" / "alpha.txt", std::string("a"));
  EXPECT_EQ(lethe::io::first_entry(dir / "run"), "alpha.txt");  // by name, whatever the listing order
}

// One rule for a MASK on any set: [B or 1, H, W] (or [H, W]) at the set's size or a whole multiple
// of it; each cell of the result is the mean of its block (a slow loop is the reference).
TEST(SpatialMasks, ExactSizeOrWholeMultipleAveragedBlockwise) {
  const at::Tensor exact = at::arange(3 * 4 * 6, at::kFloat).reshape({3, 4, 6}).remainder(5.0) / 5.0;
  EXPECT_TRUE(at::equal(lethe::unlearn::spatial_masks(exact, 3, 4, 6, "mask"), exact.unsqueeze(1)));

  const at::Tensor big = at::arange(2 * 8 * 12, at::kFloat).reshape({2, 8, 12}).remainder(7.0) / 7.0;
  const at::Tensor pooled = lethe::unlearn::spatial_masks(big, 2, 4, 6, "mask");  // [2, 1, 4, 6]
  ASSERT_EQ(pooled.sizes(), (at::IntArrayRef{2, 1, 4, 6}));
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t y = 0; y < 4; ++y)
      for (int64_t x = 0; x < 6; ++x) {
        double sum = 0;
        for (int64_t dy = 0; dy < 2; ++dy)
          for (int64_t dx = 0; dx < 2; ++dx) sum += big[b][2 * y + dy][2 * x + dx].item<double>();
        EXPECT_NEAR(pooled[b][0][y][x].item<double>(), sum / 4, 1e-6);
      }

  const at::Tensor shared = lethe::unlearn::spatial_masks(exact[0], 5, 4, 6, "mask");  // [H, W] for all
  ASSERT_EQ(shared.size(0), 5);
  EXPECT_TRUE(at::equal(shared[4][0], exact[0]));

  expect_error([] { lethe::unlearn::spatial_masks(at::ones({3, 5, 6}), 3, 4, 6, "node 7 mask"); },
               {"node 7 mask", "expected MASK [3 or 1, H, W] with H x W = 4x6 or a whole multiple of it", "[3, 5, 6]"});
  expect_error([] { lethe::unlearn::spatial_masks(at::ones({3, 8, 6}), 3, 4, 6, "mask"); },
               {"whole multiple", "[3, 8, 6]"});  // 2x in height, 1x in width: not one multiple
  expect_error([] { lethe::unlearn::spatial_masks(at::ones({2, 4, 6}), 3, 4, 6, "mask"); }, {"[2, 4, 6]"});
}
