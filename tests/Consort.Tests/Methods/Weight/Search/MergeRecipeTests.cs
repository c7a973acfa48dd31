using Consort.Methods.Weight.Search;
using Xunit;

namespace Consort.Tests.Methods.Weight.Search;

public sealed class MergeRecipeTests
{
    [Fact]
    public void Adapter_recipes_are_task_arithmetic_over_base_plus_adapter_inputs()
    {
        var r = MergeRecipe.ForAdapters("/z/base.gguf", [("/z/a.gguf", 0.75), ("/z/b.gguf", -0.25)], ["lorahub, dev 0.5"]);
        var yaml = r.ToYaml();
        Assert.Equal("""
            # lorahub, dev 0.5
            merge_method: task_arithmetic
            base_model: /z/base.gguf
            models:
              - model: /z/base.gguf+/z/a.gguf
                parameters:
                  weight: 0.75
              - model: /z/base.gguf+/z/b.gguf
                parameters:
                  weight: -0.25
            parameters:
              normalize: false
            dtype: float16

            """.Replace("\r", ""), yaml);
        Assert.Throws<InvalidOperationException>(() => r.ToMergeConfig("test"));
    }

    [Fact]
    public void Coefficient_recipes_load_as_merge_configs()
    {
        var base_ = Consort.Training.Zoo.ResolveModel("zoo:base");
        var arith = Consort.Training.Zoo.ResolveModel("zoo:arith");
        var r = MergeRecipe.ForCoefficients([base_, arith], [1.3, -0.3]);
        var c = r.ToMergeConfig("test");
        Assert.Equal("linear", c.MergeMethod);
        Assert.Equal(2, c.Models.Count);
        Assert.Contains("weight: -0.3", r.ToYaml());
    }
}
