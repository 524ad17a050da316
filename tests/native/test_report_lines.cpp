// The evaluation's text results: the per-model summary and the before -> after line, for the
// artist's memorization rate and for an erased concept (the share of its prompt's samples the
// classifier still calls it), from a hand-written report.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "eval/report.hpp"
#include "test_helpers.hpp"

namespace {

nlohmann::json model(double memorized, double fid, double sneaker) {
  return {{"memorization_rate", memorized}, {"fid", fid}, {"class_accuracy", 0.8}, {"class_accuracy_sneaker", sneaker}};
}

nlohmann::json report() {
  return {{"models",
           {{"evaluated", model(0.06, 0.92, 0.31)}, {"baseline", model(0.99, 0.81, 0.97)}, {"reference", model(0.0, 0.8, 0.0)}}}};
}

TEST(ReportLines, BeforeAfterForTheArtistAndForAnErasedConcept) {
  EXPECT_EQ(lethe::eval::before_after_line(report()),
            "before -> after: memorization rate 0.99 -> 0.06, FID 0.81 -> 0.92 (retrained: 0.00, 0.80)");
  EXPECT_EQ(lethe::eval::before_after_line(report(), "sneaker"),
            "before -> after: sneaker still drawn as sneaker 0.97 -> 0.31, FID 0.81 -> 0.92 (retrained: 0.00, 0.80)");
  nlohmann::json alone = report();
  alone["models"].erase("baseline");
  EXPECT_EQ(lethe::eval::before_after_line(alone, "sneaker"), "");
}

TEST(ReportLines, SummaryAddsTheConceptShareAndRefusesAClassNotEvaluated) {
  const std::string summary = lethe::eval::report_summary(report(), "sneaker");
  EXPECT_NE(summary.find("evaluated: memorization_rate 0.06, fid 0.92, class_accuracy 0.8, sneaker still drawn as sneaker 0.31\n"),
            std::string::npos)
      << summary;
  EXPECT_EQ(lethe::eval::report_summary(report()).find("sneaker"), std::string::npos);
  lethe::testing::expect_error([] { lethe::eval::report_summary(report(), "sandal"); },
                               {"class_accuracy_sandal", "expected the erased concept to be one of the evaluated classes",
                                "got 'sandal'"});
}

}  // namespace
