// Where Lethe writes (io/output_path.hpp, io/atomic_file.hpp): user-given names stay inside
// their output root (absolute paths, "..", symlinks refused), node ids become safe and
// distinct file-name parts, numbered names and folders are claimed exclusively under
// concurrency, and a folder lock is exclusive.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <thread>

#include "io/atomic_file.hpp"
#include "io/output_path.hpp"
#include "test_helpers.hpp"

namespace fs = std::filesystem;
using lethe::testing::expect_error;
using lethe::testing::TempDir;
namespace io = lethe::io;

TEST(OutputPath, RelativeNamesStayInsideTheRoot) {
  TempDir dir;
  EXPECT_EQ(io::path_inside(dir.path(), "lethe/unlearned", "prefix"), dir.path() / "lethe" / "unlearned");
  EXPECT_EQ(io::path_inside(dir.path(), "a/./b", "prefix"), dir.path() / "a/./b");
}

TEST(OutputPath, AbsolutePathsParentPartsAndEmptyNamesAreRefused) {
  TempDir dir;
  expect_error([&] { io::path_inside(dir.path(), "/tmp/evil", "node 5 (LetheSaveModel) input 'filename_prefix'"); },
               {"node 5 (LetheSaveModel) input 'filename_prefix'", "absolute path '/tmp/evil'", dir.path().string()});
  expect_error([&] { io::path_inside(dir.path(), "../x", "prefix"); }, {"'..'", "'../x'"});
  expect_error([&] { io::path_inside(dir.path(), "a/../../../../x", "prefix"); }, {"'..'"});
  expect_error([&] { io::path_inside(dir.path(), "", "prefix"); }, {"empty name"});
}

TEST(OutputPath, SymlinksLeadingOutsideAreRefused) {
  TempDir dir, outside;
  fs::create_directories(dir / "out");
  fs::create_directory_symlink(outside.path(), dir / "out" / "escape");
  expect_error([&] { io::path_inside(dir / "out", "escape/model", "prefix"); }, {"leads outside the output folder"});
  fs::create_directory(dir / "out" / "inside");
  fs::create_directory_symlink(dir / "out" / "inside", dir / "out" / "alias");
  EXPECT_NO_THROW(io::path_inside(dir / "out", "alias/model", "prefix"));  // a link that stays inside is fine
}

TEST(OutputPath, NodeIdsBecomeDistinctSafeFileNameParts) {
  EXPECT_EQ(io::file_name_part("7"), "7");
  EXPECT_EQ(io::file_name_part("node_7-b"), "node_7-b");
  const std::string traversal = io::file_name_part("a/../../../../x");
  EXPECT_EQ(traversal.find('/'), std::string::npos);
  EXPECT_EQ(traversal.find(".."), std::string::npos);
  EXPECT_NE(io::file_name_part("a/b"), io::file_name_part("a_b"));  // sanitizing never merges two ids
  EXPECT_NE(io::file_name_part(""), "");
  EXPECT_LE(io::file_name_part(std::string(500, 'x')).size(), 64u + 9u);
}

TEST(OutputPath, ConcurrentWritersGetDistinctNumberedFiles) {
  TempDir dir;
  constexpr int kThreads = 8, kEach = 5;
  std::vector<std::thread> threads;
  std::vector<std::vector<fs::path>> written(kThreads);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int k = 0; k < kEach; ++k) {
        const std::string content = "writer " + std::to_string(t) + " file " + std::to_string(k);
        written[t].push_back(io::write_numbered_file(dir.path(), "lethe/model", ".txt", "prefix", [&](const fs::path& path) {
          io::write_file_atomic(path, content, io::WriteMode::exclusive);
        }));
      }
    });
  for (auto& thread : threads) thread.join();
  std::set<fs::path> names;
  for (int t = 0; t < kThreads; ++t)
    for (int k = 0; k < kEach; ++k) {
      names.insert(written[t][k]);
      EXPECT_EQ(io::read_file(written[t][k]), "writer " + std::to_string(t) + " file " + std::to_string(k));
    }
  EXPECT_EQ(names.size(), static_cast<size_t>(kThreads * kEach)) << "no name was handed out twice";
  EXPECT_TRUE(fs::exists(dir / "lethe/model_00001_.txt"));
  EXPECT_TRUE(fs::exists(dir / "lethe/model_00040_.txt"));
}

TEST(OutputPath, ExclusiveWritesNeverReplaceAFile) {
  TempDir dir;
  io::write_file_atomic(dir / "a.txt", "first", io::WriteMode::exclusive);
  EXPECT_THROW(io::write_file_atomic(dir / "a.txt", "second", io::WriteMode::exclusive), io::FileExists);
  EXPECT_EQ(io::read_file(dir / "a.txt"), "first");
  std::size_t leftovers = 0;
  for (const auto& item : fs::directory_iterator(dir.path())) leftovers += item.path().filename() != "a.txt";
  EXPECT_EQ(leftovers, 0u) << "no temporary file is left behind";
}

TEST(OutputPath, ConcurrentFolderClaimsAreExclusive) {
  TempDir dir;
  std::vector<std::thread> threads;
  std::vector<fs::path> claimed(8);
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] { claimed[t] = io::claim_numbered_folder(dir.path(), "evaluate-node-3"); });
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(std::set<fs::path>(claimed.begin(), claimed.end()).size(), 8u);
  EXPECT_TRUE(fs::is_directory(dir / "evaluate-node-3"));
  EXPECT_TRUE(fs::is_directory(dir / "evaluate-node-3-8"));
}

TEST(OutputPath, AFolderLockIsExclusiveUntilReleased) {
  TempDir dir;
  io::FolderLock first(dir.path());
  ASSERT_TRUE(first.held());
  io::FolderLock second(dir.path());
  EXPECT_FALSE(second.held());
  first.release();
  io::FolderLock third(dir.path());
  EXPECT_TRUE(third.held());
}

TEST(OutputPath, ReadingAFolderAsAFileSaysSo) {
  TempDir dir;
  expect_error([&] { io::read_file(dir.path()); }, {dir.path().string(), "it is a folder, expected a file"});
}
