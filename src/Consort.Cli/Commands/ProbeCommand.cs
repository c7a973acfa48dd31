using System.CommandLine;
using System.Text.Json.Nodes;
using Consort.LlamaCpp;

namespace Consort.Cli.Commands;

/// <summary>
/// <c>consort probe MODEL.gguf</c> (hidden): the first-load probe's child. Loads the model through llama.cpp,
/// encodes a short text, decodes a few tokens and reads their logits, then prints a JSON report. When llama.cpp
/// aborts, only this process dies and the parent (<see cref="LlamaProbe"/>) reports llama.cpp's last message.
/// With <c>--isolated</c> it does what every load does instead: the cached verdict, or a probe in a child.
/// </summary>
public sealed class ProbeCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var model = new Argument<string>("model") { Description = "A .gguf model file." };
        var noValidate = new Option<bool>("--no-validate") { Description = "Skip the managed validation (the parent has done it; tests use it to see a crash contained)." };
        var isolated = new Option<bool>("--isolated") { Description = "Check as a load does: cached verdict, else a probe in a child process; prints the verdict and its cost." };
        var cmd = new Command("probe", "Load and exercise a GGUF model (the crash-proof first load's child process).") { Hidden = true };
        cmd.Arguments.Add(model);
        cmd.Options.Add(noValidate);
        cmd.Options.Add(isolated);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            string path = Path.GetFullPath(pr.GetValue(model)!);
            if (pr.GetValue(isolated))
            {
                if (!pr.GetValue(noValidate)) GgufModelInfoCheck(path);
                var v = LlamaProbe.Check(path, ct);
                Console.WriteLine(new JsonObject
                {
                    ["ok"] = v.Ok, ["path"] = v.Path, ["error"] = v.Error, ["cached"] = v.Cached, ["isolated"] = v.Isolated,
                    ["ms"] = Math.Round(v.Elapsed.TotalMilliseconds, 1),
                }.ToJsonString());
                if (!v.Ok) throw new ModelFileException(v.Path, v.Error ?? "probe failed");
                return Task.FromResult(0);
            }
            Console.WriteLine(LlamaProbe.RunInProcess(path, validate: !pr.GetValue(noValidate)).ToJsonString());
            return Task.FromResult(0);
        });
        return cmd;
    }

    private static void GgufModelInfoCheck(string path)
    {
        using var f = Formats.Gguf.GgufFile.Open(path);
        Formats.Gguf.GgufValidator.ThrowIfInvalid(f);
    }
}
