using System.CommandLine;
using Consort.Weights.Lora;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort extract-lora --model FT --base-model BASE --out adapter.gguf [--out peft-folder]</c>: the low-rank
/// approximation of a fine-tune minus its base (mergekit-extract-lora), as a llama.cpp GGUF adapter and/or a PEFT folder.
/// </summary>
public sealed class ExtractLoraCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "the fine-tuned model (GGUF, Hugging Face folder, or zoo:NAME)", Required = true };
        var baseModel = new Option<string>("--base-model") { Description = "its base model (same format and shapes)", Required = true };
        var outputs = new Option<string[]>("--out", "--out-path", "-o") { Description = "output: a .gguf file (llama.cpp adapter) or a folder (PEFT); repeat for both", Required = true, AllowMultipleArgumentsPerToken = true };
        var rank = new Option<int>("--max-rank") { Description = "largest rank per matrix", DefaultValueFactory = _ => 128 };
        var energy = new Option<double?>("--energy") { Description = "choose each matrix's rank as the smallest keeping this share of ‖ΔW‖² (0-1], up to --max-rank" };
        var eps = new Option<double>("--sv-epsilon") { Description = "drop singular values at or below this", DefaultValueFactory = _ => 0 };
        var noDistribute = new Option<bool>("--no-distribute-scale") { Description = "put the singular values into A only (A = S Vᵀ, B = U) instead of √S into each" };
        var include = new Option<string[]>("--include-regex", "-i") { Description = "only matrices matching (either naming)", AllowMultipleArgumentsPerToken = true };
        var exclude = new Option<string[]>("--exclude-regex", "-e") { Description = "leave out matrices matching", AllowMultipleArgumentsPerToken = true };
        var seed = new Option<int>("--seed") { Description = "seed of the randomized SVD of large matrices", DefaultValueFactory = _ => 42 };
        var cmd = new Command("extract-lora", "Extract a LoRA adapter (truncated SVD of fine-tune − base) as a GGUF adapter and/or PEFT folder.");
        foreach (var o in new Option[] { model, baseModel, outputs, rank, energy, eps, noDistribute, include, exclude, seed }) cmd.Options.Add(o);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var options = new LoraExtractOptions
            {
                MaxRank = pr.GetValue(rank), Energy = pr.GetValue(energy), SvEpsilon = pr.GetValue(eps), DistributeScale = !pr.GetValue(noDistribute),
                Include = pr.GetValue(include) ?? [], Exclude = pr.GetValue(exclude) ?? [], Seed = pr.GetValue(seed),
            };
            var r = LoraExtractor.Extract(ModelArgument.Resolve(pr.GetValue(model)!), ModelArgument.Resolve(pr.GetValue(baseModel)!), pr.GetValue(outputs)!, options,
                new MergeCommand.Inline<(string Tensor, int Done, int Total)>(p => { if (p.Done % 16 == 0 || p.Done == p.Total) Console.WriteLine($"  {p.Done}/{p.Total} tensors"); }), ct);
            foreach (var o in r.Outputs) Console.WriteLine($"wrote {o}");
            Console.WriteLine($"  matrices      {r.Modules.Count}, ranks {r.Modules.Min(m => m.Rank)}-{r.Modules.Max(m => m.Rank)} (mean {r.Modules.Average(m => m.Rank):F1})");
            Console.WriteLine($"  energy kept   {r.Modules.Min(m => m.Energy):P1} (worst matrix), relative error ‖ΔW − BA‖/‖ΔW‖ up to {r.Modules.Max(m => m.RelativeError):F3}");
            if (r.Unrepresented.Count > 0)
                Console.WriteLine($"  not in a LoRA {r.Unrepresented.Count} changed tensor(s) (norms, embeddings), largest relative change {r.Unrepresented.Max(u => u.RelativeChange):F4}: {string.Join(", ", r.Unrepresented.Take(6).Select(u => u.Tensor))}{(r.Unrepresented.Count > 6 ? ", ..." : "")}");
            Console.WriteLine($"  seconds       {r.Seconds:F2}");
            return Task.FromResult(0);
        });
        return cmd;
    }
}

/// <summary>Model arguments of the merge commands: a path, or a reference (<c>zoo:NAME</c>, <c>hf:owner/repo/file</c>).</summary>
internal static class ModelArgument
{
    public static string Resolve(string model) => Consort.Config.ModelReferenceResolver.Resolve(model);
}
