using System.CommandLine;
using Consort.Formats.Conversion;
using Consort.Formats.Safetensors;

namespace Consort.Cli.Commands;

/// <summary><c>consort convert IN OUT</c>: Hugging Face safetensors folder / llama2.c .bin to GGUF, or GGUF to safetensors.</summary>
public sealed class ConvertCommand : ICliCommand
{
    /// <inheritdoc />
    public Command Build()
    {
        var input = new Argument<string>("input") { Description = "HF folder (config.json + safetensors), .safetensors, index json, .gguf (or zoo:NAME, hf:owner/repo/file.gguf), or llama2.c .bin" };
        var output = new Argument<string>("output") { Description = "a .gguf file, or a folder (safetensors) for GGUF/llama2.c input" };
        var tokenizer = new Option<string?>("--tokenizer-from") { Description = "copy tokenizer metadata from this GGUF instead of building it from tokenizer.json" };
        var dtype = new Option<string>("--dtype") { Description = "matrix storage type: float32 (f32), float16 (f16) or bfloat16 (bf16)", DefaultValueFactory = _ => "float32" };
        var cmd = new Command("convert", "Convert a LLaMA model between Hugging Face safetensors, GGUF and llama2.c.");
        cmd.Arguments.Add(input);
        cmd.Arguments.Add(output);
        cmd.Options.Add(tokenizer);
        cmd.Options.Add(dtype);
        cmd.SetAction((ParseResult pr, CancellationToken ct) =>
        {
            var type = SafetensorsDType.ParseUser(pr.GetValue(dtype)!);
            var from = Consort.Config.ModelReferenceResolver.IsReference(pr.GetValue(input)!) ? Consort.Config.ModelReferenceResolver.Resolve(pr.GetValue(input)!) : pr.GetValue(input)!;
            var tokFrom = pr.GetValue(tokenizer) is { } tf && Consort.Config.ModelReferenceResolver.IsReference(tf) ? Consort.Config.ModelReferenceResolver.Resolve(tf) : pr.GetValue(tokenizer);
            // The output is checked before any work: a .gguf file (its folder created when missing) or a folder.
            var to = pr.GetValue(output)!;
            OutputPaths.CheckModelOutput(to, "output");
            var r = ModelConverter.Convert(from, to, new ConvertOptions { TokenizerFrom = tokFrom, OutType = type }, ct);
            Console.WriteLine($"wrote {r.Output}: {r.Tensors} tensors, {r.BytesWritten / 1e6:F2} MB");
            return Task.FromResult(0);
        });
        return cmd;
    }
}
