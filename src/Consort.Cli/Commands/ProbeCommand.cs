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
        var model = new Argument<string[]>("model") { Description = "GGUF model files (several: probed one after another, one JSON line each).", Arity = ArgumentArity.OneOrMore };
        var noValidate = new Option<bool>("--no-validate") { Description = "Skip the managed validation (the parent has done it; tests use it to see a crash contained)." };
        var batch = new Option<bool>("--batch") { Description = "Probe every file in this process, one JSON line each (a clean failure does not stop the batch)." };
        var isolated = new Option<bool>("--isolated") { Description = "Check as a load does: cached verdict, else a probe in a child process; prints the verdict and its cost." };
        var cmd = new Command("probe", "Load and exercise a GGUF model (the crash-proof first load's child process).") { Hidden = true };
        cmd.Arguments.Add(model);
        cmd.Options.Add(noValidate);
        cmd.Options.Add(isolated);
        cmd.Options.Add(batch);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var paths = pr.GetValue(model)!.Select(Path.GetFullPath).ToList();
            if (pr.GetValue(isolated))
            {
                // As every load does it: the cached verdict, else a probe in a child. Naming a file twice shows both costs.
                bool allOk = true;
                foreach (var p in paths)
                {
                    if (!pr.GetValue(noValidate)) GgufModelInfoCheck(p);
                    var v = LlamaProbe.Check(p, ct);
                    allOk &= v.Ok;
                    Console.WriteLine(new JsonObject
                    {
                        ["ok"] = v.Ok, ["path"] = v.Path, ["error"] = v.Error, ["cached"] = v.Cached, ["isolated"] = v.Isolated,
                        ["ms"] = Math.Round(v.Elapsed.TotalMilliseconds, 2),
                    }.ToJsonString());
                    if (!v.Ok && paths.Count == 1) throw new ModelFileException(v.Path, v.Error ?? "probe failed");
                }
                return Task.FromResult(allOk ? 0 : 1);
            }
            if (paths.Count > 1 || pr.GetValue(batch))
            {
                // Many files in one process (the fuzzer's batches): a clean failure is reported and the next file
                // follows; a native crash ends the process, and the first file without a line is the one that did it.
                foreach (var p in paths)
                {
                    ct.ThrowIfCancellationRequested();
                    JsonObject line;
                    try { line = LlamaProbe.RunInProcess(p, validate: !pr.GetValue(noValidate)); }
                    catch (ConsortException e) { line = new JsonObject { ["ok"] = false, ["path"] = p, ["error"] = MessageText.Escape(e.Message, 4000) }; }
                    Console.WriteLine(line.ToJsonString());
                    Console.Out.Flush();
                }
                return Task.FromResult(0);
            }
            string path = paths[0];
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
